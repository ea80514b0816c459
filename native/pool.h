// A persistent thread pool shared by every kernel. The calling (JavaScript) thread is worker 0, so a pool of
// n threads starts n-1 helpers. Helpers spin briefly after each job (kernels arrive back to back during a
// training step, and a condition-variable wake costs tens of microseconds) and then sleep. A job's tasks are cut
// into one contiguous home range per thread, run there first, so the same rows land on the same core kernel after
// kernel; a thread that finishes its range takes what is left of the others'.
//
// The interface is plain C (a function pointer and a context) on purpose: this header is included by the
// translation units compiled for AVX-512 / AVX2, and any inline or template code shared between them could be
// merged by the linker into one copy built for the wrong instruction set.
#pragma once
#include <cstdint>

namespace orpo {

typedef void (*TaskFn)(void* ctx, int64_t task);

/** Runs fn(ctx, t) for t in [0, ntasks), spread over the pool; blocks until all are done. */
void pool_run(int64_t ntasks, TaskFn fn, void* ctx);
int pool_threads();
void pool_set_threads(int n);

/**
 * Matrix products in bfloat16 (mixed precision, as PyTorch's autocast): their inputs rounded to bfloat16, products
 * summed in float32. Process-wide, like the thread count; off by default.
 */
bool matmul_bf16();
void set_matmul_bf16(bool on);

}  // namespace orpo
