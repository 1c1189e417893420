/* device: which compute devices this build can use. "cpu" always works; "cuda" needs a build with the CUDA
 * backend (PULSE_CUDA) and a visible NVIDIA GPU. */
#ifndef PULSE_ENGINE_DEVICE_H
#define PULSE_ENGINE_DEVICE_H

#include <stddef.h>

/* 0 if the device can be used, -1 with err_set saying why not (one line). */
int device_check(const char *device);
/* Writes a short description of the device ("cpu, 2 threads", "cuda: NVIDIA H100 80GB HBM3, 79.1 GiB"). */
int device_describe(const char *device, int threads, char *out, size_t cap);

#endif
