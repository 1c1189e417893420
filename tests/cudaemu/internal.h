/* internal: what the emulator's own files share (runtime.cpp, sched.cpp, blas.cpp); the kernels see only
 * cuda_runtime.h. */
#ifndef CUDAEMU_INTERNAL_H
#define CUDAEMU_INTERNAL_H

#include "cuda_runtime.h"

#include <functional>

namespace cudaemu {
/* runtime.cpp: queues device work, run in order when the host waits. */
void enqueue(std::function<void()> w);
/* sched.cpp: runs a launch now (from the queue, device memory open); whether a configuration is legal. */
void run_launch(const char *name, int line, dim3 grid, dim3 block, const std::function<void()> &body);
bool launch_ok(dim3 grid, dim3 block);
} // namespace cudaemu

#endif
