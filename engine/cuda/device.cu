/* device.cu: asks the CUDA runtime which GPU is there, turning "no GPU" into one clear line. */
#include <cuda_runtime.h>
#include <stdio.h>

extern "C" int err_set(const char *fmt, ...);

extern "C" int cuda_device_query(char *name, size_t cap, double *gib) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess)
        return err_set("--device cuda: no usable CUDA device (%s)", cudaGetErrorString(e));
    if (n == 0)
        return err_set("--device cuda: no CUDA device found");
    cudaDeviceProp p;
    e = cudaGetDeviceProperties(&p, 0);
    if (e != cudaSuccess)
        return err_set("--device cuda: %s", cudaGetErrorString(e));
    snprintf(name, cap, "%s", p.name);
    *gib = (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0);
    return 0;
}
