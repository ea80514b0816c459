// The bf16 GEMM on Intel AMX tiles (Sapphire Rapids and later): TDPBF16PS, bf16 operands, float32 sums (issue 16).
// The AVX-512 kernel table offers it as a third bf16 path next to fma and dpbf16 (see kernels_impl.h); this header
// is its whole interface, plain C++ with no intrinsics, so kernels_impl.h can include it in every table's build.
// The code is in amx_impl.h (the tile operations behind a template parameter: the real instructions, or a scalar
// emulation of Intel's pseudocode that native/test/amx.cc runs on CPUs without AMX) and amx.cc (built once, in the
// AVX-512 library, with the AMX instructions only inside target attributes so the addon loads on any x86-64 CPU).
#pragma once
#include <cstdint>

namespace orpo {
namespace amx {

/**
 * Whether this process can execute AMX bf16 instructions: CPUID reports AMX-TILE and AMX-BF16, and Linux granted
 * the tile data state (arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA), asked for once). False elsewhere.
 */
bool hardware();

/** true only in a test build of amx.cc (-DORPO_AMX_EMULATE) whose tiles are the emulation: hardware() says yes */
bool emulated();

/**
 * hardware(), and the start-up self-check passed: the first call multiplies one small product with odd sizes
 * (every edge of the packing and the blocking) on the tiles and compares it with a scalar float64 product of the
 * same bf16-rounded operands; beyond float32 summation-order tolerance AMX is left off for the process, with one
 * line on stderr. The guard exists because this code was written and tested against an emulation only.
 */
bool usable();

/**
 * One thread's bf16 GEMM on the tiles: c (M,N) row stride ldc [+]= A (M,K) @ B (K,N), element (i,k) of A at
 * a[i * ars + k * acs] and (k,j) of B at b[k * brs + j * bcs] (so any transposition), both rounded to bf16 (nearest
 * even) while packed, products summed in float32 (subnormal inputs and results count as zero, as on dpbf16).
 * kc, mc, nc: the cache blocks, rounded down to multiples of 32 (at least 32). Call only when usable().
 */
void gemm_serial(float* c, int64_t ldc, const float* a, int64_t ars, int64_t acs, const float* b, int64_t brs,
                 int64_t bcs, int64_t M, int64_t N, int64_t K, bool accumulate, int64_t kc, int64_t mc, int64_t nc);

/** the same with B a weight held as bf16 (its bits, strides in 16-bit elements): packed as it is, no rounding */
void gemm_serial(float* c, int64_t ldc, const float* a, int64_t ars, int64_t acs, const uint16_t* b, int64_t brs,
                 int64_t bcs, int64_t M, int64_t N, int64_t K, bool accumulate, int64_t kc, int64_t mc, int64_t nc);

}  // namespace amx
}  // namespace orpo
