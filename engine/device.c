/* device: device selection and description, with the CUDA query behind PULSE_HAVE_CUDA. */
#include "engine/device.h"
#include "engine/mem.h"
#include "engine/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"

#ifdef PULSE_HAVE_CUDA
int cuda_device_query(char *name, size_t cap, double *gib); /* engine/cuda/device.cu */
#endif

int device_check(const char *device) {
    if (strcmp(device, "cpu") == 0)
        return 0;
    if (strcmp(device, "cuda") != 0)
        return err_set("--device: unknown device '%s' (use cpu or cuda)", device);
#ifdef PULSE_HAVE_CUDA
    char name[256];
    double gib;
    return cuda_device_query(name, sizeof name, &gib);
#else
    return err_set(
        "--device cuda: this build has no CUDA backend (configure with -DPULSE_CUDA=ON on a machine "
        "with nvcc and cuBLAS)");
#endif
}

int device_describe(const char *device, int threads, char *out, size_t cap) {
    if (strcmp(device, "cpu") == 0) {
        snprintf(out, cap, "cpu, %d thread%s", threads, threads == 1 ? "" : "s");
        return 0;
    }
#ifdef PULSE_HAVE_CUDA
    char name[256];
    double gib;
    if (cuda_device_query(name, sizeof name, &gib) != 0)
        return -1;
    snprintf(out, cap, "cuda: %s, %.1f GiB", name, gib);
    return 0;
#else
    (void)threads;
    return device_check(device);
#endif
}

/* PULSE_CHECK_OPS=1 wraps the table in ops_checked (engine/ops_check.c), which aborts on a pointer that is
 * not inside memory from mem_alloc. The registry it consults starts here, before the stage allocates
 * anything. */
const struct ops *ops_select(const char *device, int threads) {
    if (device_check(device) != 0)
        return NULL;
    int cuda = strcmp(device, "cuda") == 0;
    if (mem_use_cuda(cuda) != 0)
        return NULL;
    const char *chk = getenv("PULSE_CHECK_OPS");
    int checked = chk && strcmp(chk, "1") == 0;
    if (checked)
        mem_check_enable();
    const struct ops *o;
#ifdef PULSE_HAVE_CUDA
    if (cuda)
        o = ops_cuda();
    else
#endif
        o = ops_cpu(threads);
    return checked ? ops_checked(o) : o;
}
