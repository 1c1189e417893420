/* sched: how cudaemu runs a kernel. Blocks run one after another on the host thread that waits for the work;
 * inside a block every CUDA thread is a fiber on its own small stack, run until it reaches __syncthreads or
 * returns, then the next one; when all have reached the barrier, the next phase starts. A barrier that some
 * threads of a block reach while others have returned is a divergent barrier (undefined on a GPU): an error
 * here. PULSE_CUDAEMU_ORDER=reverse runs the blocks, and the threads of each phase, in the opposite order: a
 * kernel whose result depends on that order reads what another thread writes without a barrier between
 * (tests run the parity test both ways). Built with ThreadSanitizer, each thread is also a TSan fiber with a
 * GPU's happens-before edges (race::, below), which finds the races the fibers' order cannot show.
 *
 * The fiber switch is fifteen instructions of x86-64 assembly (callee-saved registers and the stack pointer),
 * not ucontext: swapcontext makes a system call per switch, and a row kernel switches a million times. */
#include "internal.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <pthread.h>
#include <sys/mman.h>
#include <vector>

#if !defined(__x86_64__)
#error "cudaemu's fibers are written for x86-64"
#endif

uint3 threadIdx, blockIdx;
/* The linker's bounds of every kernel's __shared__ variables (cuda_runtime.h); weak: a program may have none.
 */
extern "C" char __start_cudaemu_shared[] __attribute__((weak)), __stop_cudaemu_shared[] __attribute__((weak));
dim3 blockDim, gridDim;

/* cudaemu_switch(save, to): saves the running fiber's registers on its stack and its stack pointer in *save,
 * then resumes the fiber whose stack pointer is `to` (SysV: rdi, rsi). */
extern "C" void cudaemu_switch(void **save, void *to);
__asm__(".text\n"
        ".globl cudaemu_switch\n"
        ".type cudaemu_switch, @function\n"
        "cudaemu_switch:\n"
        "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
        "  ret\n"
        ".size cudaemu_switch, .-cudaemu_switch\n");

/* ---- ThreadSanitizer: a build with -fsanitize=thread finds data races between CUDA threads ----
 *
 * Each CUDA thread is a TSan fiber, and the happens-before edges are a GPU's: the host's work before the
 * launch precedes every thread, a barrier's phase precedes the block's next phase, and every thread of the
 * launch precedes what the host does after it. Nothing orders two blocks of one launch, as on a GPU, where
 * they may run at once: two threads that touch one address, one of them writing, with no barrier between
 * (same block) or at all (two blocks), are reported, the lost updates and stale reads the fibers otherwise
 * hide (README.md). Blocks alternate between two sets of fibers, each with its own stacks and barrier
 * objects (a fiber's own history would order block b's thread t before block b + 1's), so a race between
 * consecutive blocks is found, and between any two blocks of a kernel whose blocks all race alike; blocks
 * an even distance apart share fibers and may be ordered. A block's shared memory is one static here, so TSan
 * forgets its accesses before the next block starts (TSan's Java heap interface: "memory freed and allocated
 * again"). This file is built without instrumentation (its bookkeeping is not the kernels'). */
#if defined(CUDAEMU_TSAN)
extern "C" {
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
void __tsan_java_init(unsigned long heap_begin, unsigned long heap_size);
void __tsan_java_alloc(unsigned long ptr, unsigned long size);
void __tsan_java_free(unsigned long ptr, unsigned long size);
void AnnotateIgnoreWritesBegin(const char *file, int line);
void AnnotateIgnoreWritesEnd(const char *file, int line);
}
namespace race {
/* Thread t of fiber set k always runs on stack k * MAX_FIBERS + t: a stack passed from one fiber to
 * another would look to TSan like two threads writing the same locals. */
constexpr bool OWN_STACKS = true;
constexpr unsigned SETS = 2;
enum { NO_SYNC = 1, MAX_FIBERS = 1024 };
/* Sync objects: the launch's start and end, and per fiber set the phases, which alternate between two:
 * every acquire of phase k's object (on leaving barrier k) comes before any release into phase k + 2's (on
 * reaching barrier k + 2, which needs every thread past barrier k + 1). Fixed addresses: TSan never frees a
 * sync object. */
char launch_starts, launch_ends, phases[SETS][2];
size_t next;
unsigned set; /* the running block's fiber set */
void *host, *fibers[SETS][MAX_FIBERS];
size_t fresh() {
    return next++;
}
unsigned stack_base() {
    return set * MAX_FIBERS;
}
/* A forked child cannot use its parent's fibers (TSan keeps only the forking thread): it makes its own. */
void forget_fibers() {
    memset(fibers, 0, sizeof fibers);
}
void to_thread(unsigned t) {
    __tsan_switch_to_fiber(fibers[set][t], NO_SYNC);
}
void to_host() {
    __tsan_switch_to_fiber(host, NO_SYNC);
}
/* A fresh block's shared memory: poisoned unseen (the memset interceptor would record a host write racing
 * the last block's accesses), then forgotten, by declaring the section TSan's "Java heap" and allocating it
 * anew (8-byte granules: the bounds rounded outwards, which only forgets neighbours' accesses). */
void shared_fresh(char *sh, char *end) {
    static unsigned long begin, size;
    AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
    memset(sh, 0xff, (size_t)(end - sh));
    AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
    if (!size) {
        begin = (unsigned long)sh & ~7ul;
        size = (((unsigned long)end + 7) & ~7ul) - begin;
        __tsan_java_init(begin, size);
    } else
        __tsan_java_free(begin, size); /* the last block's "allocation": TSan keeps a record of each */
    __tsan_java_alloc(begin, size);
}
void launch_start() {
    static bool once = (pthread_atfork(nullptr, nullptr, forget_fibers), true);
    (void)once;
    host = __tsan_get_current_fiber();
    __tsan_release(&launch_starts);
}
void launch_end() {
    __tsan_acquire(&launch_ends);
}
/* Block number `seq` of the launch takes fiber set seq % SETS. The fibers are made by the host: a fiber
 * starts after whatever its maker did, so one made by a kernel thread would be ordered after that thread,
 * hiding their race. */
void block_start(unsigned nt, size_t seq) {
    set = (unsigned)(seq % SETS);
    for (unsigned t = 0; t < nt; t++)
        if (!fibers[set][t])
            fibers[set][t] = __tsan_create_fiber(0);
}
void thread_start() {
    __tsan_acquire(&launch_starts);
}
void thread_end() {
    __tsan_release(&launch_ends);
}
void arrive(size_t phase) {
    __tsan_release(&phases[set][phase % 2]);
}
void leave(size_t phase) {
    __tsan_acquire(&phases[set][phase % 2]);
}
} // namespace race
#else
namespace race {
constexpr bool OWN_STACKS = false;
constexpr unsigned SETS = 1;
inline unsigned stack_base() {
    return 0;
}
inline void to_thread(unsigned) {}
inline void to_host() {}
inline void launch_start() {}
inline void launch_end() {}
inline void block_start(unsigned, size_t) {}
inline void shared_fresh(char *sh, char *end) {
    memset(sh, 0xff, (size_t)(end - sh));
}
inline void thread_start() {}
inline void thread_end() {}
inline void arrive(size_t) {}
inline void leave(size_t) {}
inline size_t fresh() {
    return 0;
}
} // namespace race
#endif

namespace {

enum { FIBER_STACK = 64 << 10, GUARD = 4 << 10, MAX_THREADS = 1024 };
enum state { NEW, RUNNING, AT_BARRIER, DONE };

struct block_run {
    const std::function<void()> *body;
    const char *name;
    int line;
    unsigned nt;           /* threads of the block */
    bool rev;              /* PULSE_CUDAEMU_ORDER=reverse */
    long pos;              /* the running thread's place in the phase's order */
    const char *barrier;   /* the __syncthreads call this phase's threads wait at ("file:line") */
    size_t phase;          /* the phase's sync object (race::) */
    unsigned cur;          /* the thread running now */
    void *sched_sp;        /* the scheduler's stack pointer while the block's fibers run */
    void *sp[MAX_THREADS]; /* each waiting thread's saved stack pointer */
    state st[MAX_THREADS];
    unsigned stack_of[MAX_THREADS];
    unsigned free_stacks[MAX_THREADS], nfree; /* last in, first out: warm in the cache */
    char *stacks; /* race::SETS * MAX_THREADS stacks, each above a PROT_NONE guard page */
} run;

void fiber_entry();

/* A fresh fiber's stack: six zero registers, then fiber_entry as the return address of the switch, then a
 * zero return address for fiber_entry itself, so it starts with the stack aligned as after a call. */
void *fiber_init(unsigned stack) {
    void **top = (void **)(run.stacks + (size_t)(stack + 1) * (FIBER_STACK + GUARD));
    *--top = nullptr;
    *--top = (void *)fiber_entry;
    for (int i = 0; i < 6; i++)
        *--top = nullptr;
    return top;
}

void stacks_once() {
    if (run.stacks)
        return;
    size_t nstacks = (size_t)race::SETS * MAX_THREADS, bytes = nstacks * (FIBER_STACK + GUARD);
    void *p =
        mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        cudaemu::fail("cudaemu: cannot map the fiber stacks");
    run.stacks = (char *)p;
    for (size_t t = 0; t < nstacks; t++)
        mprotect(run.stacks + t * (FIBER_STACK + GUARD), GUARD, PROT_NONE);
    for (unsigned t = 0; t < MAX_THREADS; t++)
        run.free_stacks[run.nfree++] = MAX_THREADS - 1 - t;
}

/* Index i of a d.x * d.y * d.z box as coordinates (without divisions for a one-dimensional box: the
 * scheduler asks for every thread). */
uint3 coords(size_t i, dim3 d) {
    if (d.y == 1 && d.z == 1)
        return uint3{(unsigned)i, 0, 0};
    return uint3{(unsigned)(i % d.x), (unsigned)(i / d.x % d.y), (unsigned)(i / ((size_t)d.x * d.y))};
}

/* Read at every launch (a test switches it between children). */
bool reverse_order() {
    const char *e = getenv("PULSE_CUDAEMU_ORDER");
    return e && strcmp(e, "reverse") == 0;
}

/* The next thread of this phase that has not returned, or -1 at the phase's end. */
long next_thread() {
    while (++run.pos < (long)run.nt) {
        unsigned t = run.rev ? run.nt - 1 - (unsigned)run.pos : (unsigned)run.pos;
        if (run.st[t] != DONE)
            return t;
    }
    return -1;
}

/* Makes t the running thread; a new one gets a stack. */
void enter(unsigned t) {
    if (run.st[t] == NEW) {
        run.stack_of[t] = race::OWN_STACKS ? race::stack_base() + t : run.free_stacks[--run.nfree];
        run.sp[t] = fiber_init(run.stack_of[t]);
    }
    run.st[t] = RUNNING;
    run.cur = t;
    threadIdx = coords(t, blockDim);
    race::to_thread(t);
}

/* Threads hand over to each other without the scheduler: a thread that returns is followed on the same stack
 * by the next new one (a kernel without barriers runs a whole block in this loop, with no switch at all), or
 * switches to the next one waiting at the barrier, or at the phase's end back to the scheduler. */
void fiber_entry() {
    for (;;) {
        race::thread_start();
        (*run.body)();
        race::thread_end();
        run.st[run.cur] = DONE;
        long t = next_thread();
        if (t >= 0 && run.st[t] == NEW && !race::OWN_STACKS) {
            run.stack_of[t] = run.stack_of[run.cur];
            run.st[t] = RUNNING;
            run.cur = (unsigned)t;
            threadIdx = coords((unsigned)t, blockDim);
            race::to_thread((unsigned)t);
            continue;
        }
        /* This stack is dead once we leave it, and nothing runs before we do. */
        if (!race::OWN_STACKS)
            run.free_stacks[run.nfree++] = run.stack_of[run.cur];
        void *dead;
        if (t < 0) {
            race::to_host();
            cudaemu_switch(&dead, run.sched_sp);
        } else {
            enter((unsigned)t);
            cudaemu_switch(&dead, run.sp[t]);
        }
        __builtin_unreachable();
    }
}

/* One block (the launch's seq-th): phases until every thread has returned. */
void run_block(size_t seq) {
    char *sh = __start_cudaemu_shared, *end = __stop_cudaemu_shared;
    if (sh != end)
        race::shared_fresh(sh, end);
    race::block_start(run.nt, seq);
    for (unsigned t = 0; t < run.nt; t++)
        run.st[t] = NEW;
    for (;;) {
        run.pos = -1;
        run.barrier = nullptr;
        run.phase = race::fresh();
        long t = next_thread();
        if (t < 0)
            break;
        enter((unsigned)t);
        cudaemu_switch(&run.sched_sp, run.sp[t]);
        unsigned done = 0, waiting = 0;
        for (unsigned i = 0; i < run.nt; i++)
            run.st[i] == DONE ? done++ : waiting++;
        if (waiting > 0 && done > 0)
            cudaemu::fail(
                "kernel %s (line %d): __syncthreads reached by %u threads of block (%u,%u,%u) while %u "
                "returned (a divergent barrier)",
                run.name, run.line, waiting, blockIdx.x, blockIdx.y, blockIdx.z, done);
    }
}

} // namespace

/* Every thread of a phase must wait at the same __syncthreads call: two calls that half the block each reach
 * are a divergent barrier too. A call is its place in the source ("file:line", cuda_runtime.h). */
void cudaemu_syncthreads(const char *site) {
    if (!run.barrier)
        run.barrier = site;
    else if (run.barrier != site && strcmp(run.barrier, site) != 0)
        cudaemu::fail(
            "kernel %s (line %d): threads of block (%u,%u,%u) wait at two different __syncthreads (a "
            "divergent barrier)",
            run.name, run.line, blockIdx.x, blockIdx.y, blockIdx.z);
    unsigned me = run.cur;
    size_t phase = run.phase;
    race::arrive(phase);
    run.st[me] = AT_BARRIER;
    long t = next_thread();
    if (t < 0) {
        race::to_host();
        cudaemu_switch(&run.sp[me], run.sched_sp);
    } else {
        enter((unsigned)t);
        cudaemu_switch(&run.sp[me], run.sp[t]);
    }
    race::leave(phase);
}

namespace cudaemu {

void run_launch(const char *name, int line, dim3 grid, dim3 block, const std::function<void()> &body) {
    stacks_once();
    run.nt = block.x * block.y * block.z;
    run.rev = reverse_order();
    size_t nb = (size_t)grid.x * grid.y * grid.z;
    run.body = &body;
    run.name = name;
    run.line = line;
    gridDim = grid;
    blockDim = block;
    race::launch_start();
    for (size_t i = 0; i < nb; i++) {
        size_t b = run.rev ? nb - 1 - i : i;
        blockIdx = coords(b, grid);
        run_block(i);
    }
    race::launch_end();
}

/* The limits of every GPU since sm_30. */
bool launch_ok(dim3 grid, dim3 block) {
    unsigned long long nt = (unsigned long long)block.x * block.y * block.z;
    return grid.x >= 1 && grid.y >= 1 && grid.z >= 1 && grid.x <= 2147483647u && grid.y <= 65535 &&
           grid.z <= 65535 && block.x >= 1 && block.y >= 1 && block.z >= 1 && block.x <= 1024 &&
           block.y <= 1024 && block.z <= 64 && nt <= MAX_THREADS;
}

} // namespace cudaemu
