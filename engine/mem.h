/* mem: the memory every tensor an operation touches comes from. On the CPU it is plain zeroed heap memory;
 * once the process has selected the CUDA device (ops_select), it is CUDA managed memory, reachable from the
 * host and the GPU alike, so the model code that fills token arrays or reads a loss on the host works
 * unchanged while the operations run on the GPU (engine/cuda/cuda.h says why that is safe).
 *
 * Model blocks (parameters, activations, gradients), LoRA matrices, optimizer state and the loss buffers a
 * caller hands to an operation are all allocated here; host-only bookkeeping keeps using xmalloc. */
#ifndef PULSE_ENGINE_MEM_H
#define PULSE_ENGINE_MEM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* `n` zeroed elements of `size` bytes. Never NULL: out of memory (or, on the GPU, more than the device has
 * free) prints one line saying how much was asked and how much is free, and exits. */
void *mem_alloc(size_t n, size_t size);
/* Frees what mem_alloc returned (NULL is fine), with the allocator that made it. */
void mem_free(void *p);
/* bf16 storage (engine/mem_bf16.c): n values kept as bf16 (2 bytes each, from mem_alloc, zeroed), behind an
 * address range of n floats that the caller indexes like any float array but never reads or writes itself
 * (it is not backed: touching it faults). Only the operations of a table that takes bf16 storage
 * (ops_takes_bf16, engine/act16.c) read and write the values, widened to fp32 and rounded back. mem_free
 * frees it. Never NULL: too large prints one line and exits. */
float *mem_alloc_bf16(size_t n);
/* The storage of the element p stands for, when p lies in a bf16 range (its end included), and in *avail
 * (may be NULL) the values from there to the range's end; NULL for any other pointer. */
uint16_t *mem_bf16_at(const void *p, size_t *avail);
/* mem_free's part: frees p when it is a bf16 range's start (returns 1), else returns 0. */
int mem_bf16_free(void *p);
/* Every later mem_alloc uses CUDA managed memory (cuda != 0) or the heap. Blocks keep the allocator they
 * were made with. Returns -1 with err_set when this build has no CUDA backend. */
int mem_use_cuda(int cuda);
int mem_on_cuda(void);

/* What the CUDA allocator leaves free on the device for cuBLAS's workspace, the backend's scratch buffers and
 * the CUDA context (engine/cuda/mem.cu refuses a block that would cut into it; memory plans count it). */
#define MEM_CUDA_RESERVE ((size_t)512 << 20)
/* The page size the CUDA backend places managed memory by (ops weights_frozen moves whole pages to the host).
 */
#define MEM_CUDA_PAGE ((size_t)2 << 20)

/* Accounting, always on: the bytes of the live blocks (what callers asked for, headers not counted) and the
 * most they reached since the last mem_peak_reset. Memory plans (engine/llava_plan.h) are checked against
 * these. Thread-safe. */
size_t mem_in_use(void);
size_t mem_peak(void);
void mem_peak_reset(void);

/* Checking (PULSE_CHECK_OPS=1, engine/ops_check.c): from mem_check_enable on, every mem_alloc block is kept
 * in a registry of live blocks (start, bytes) until mem_free, so mem_owns can tell memory from here apart
 * from a plain malloc'd buffer, and a heap block gets pages of its own (its own mapping), which the fence
 * below can protect. Off by default, so normal runs pay nothing; call it before the first mem_alloc (a block
 * made earlier is not known). It cannot be turned off again. Thread-safe. */
void mem_check_enable(void);
int mem_check_enabled(void);
/* 1 when [p, p + bytes) lies inside one live mem_alloc block (bytes == 0: p inside it or just past its end),
 * or inside one bf16 range (bytes counted as floats, as the range is indexed); 0 otherwise, and always 0
 * while checking is off. */
int mem_owns(const void *p, size_t bytes);
/* The fence (checking only; heap blocks only), which finds host code touching memory that, on the GPU, an
 * operation could still be reading or writing (engine/ops.h, "sync"). The checked table calls
 * mem_check_touch for every extent an operation gets (it opens those pages), then mem_check_queued once the
 * operation returns: every page it touched is closed, so host code that reads or writes one faults
 * (SIGSEGV) at once, until mem_check_synced (ops sync) opens them all again. Pages, not elements: a block's
 * neighbouring elements on a touched page are closed with it. */
void mem_check_touch(const void *p, size_t bytes);
void mem_check_queued(void);
void mem_check_synced(void);
/* 1 when p lies in the checked heap (a fault there is the fence's); async-signal-safe. */
int mem_check_heap(const void *p);
/* Marks block p (from mem_alloc) as one operations only read and the host fills between syncs (token ids,
 * positions): the host may read it while operations run, so the fence closes it to writes only. Without
 * checking it does nothing. */
void mem_host_reads(const void *p);

#ifdef __cplusplus
}
#endif

#endif
