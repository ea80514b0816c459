// Every kernel, written once in portable C++ and compiled once per instruction set: isa_generic.cc,
// isa_avx2.cc and isa_avx512.cc each define ORPO_ISA (a namespace name) and include this file with their own
// compiler flags, so the plain loops below are auto-vectorised for that instruction set. Only the GEMM
// micro-kernel and the peak probe use intrinsics.
//
// Everything here has internal linkage (static, or inside the per-ISA namespace) and uses no standard-library
// templates: an inline function shared between translation units compiled with different -m flags could be
// merged by the linker into the AVX-512 copy and crash on older CPUs.
//
// Shapes follow src/backend/kernels.ts; sizes were validated by the binding (addon.cc).
#ifndef ORPO_ISA
#error "define ORPO_ISA before including kernels_impl.h"
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "amx.h"
#include "cpu.h"
#include "kernels.h"
#include "pool.h"

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace orpo {
namespace ORPO_ISA {

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// ------------------------------------------------------------------------------------------------ threading

template <class F>
static void task_trampoline(void* ctx, int64_t t) {
  (*static_cast<F*>(ctx))(t);
}

/** Runs f(t) for t in [0, ntasks) on the pool. */
template <class F>
static inline void run_tasks(int64_t ntasks, F& f) {
  pool_run(ntasks, &task_trampoline<F>, &f);
}

/**
 * Kernels pass their row loops as lambdas that capture by value ([=]): with [&] every pointer and size is read
 * through the closure inside the loop, which kept GCC from vectorising well (norm backward ran 4x slower).
 *
 * Splits [0, n) into contiguous chunks of at least `grain` items, at most `chunks_per_thread` per thread, and
 * runs f(begin, end) on each. Small problems run inline: waking a thread costs more than a few thousand flops.
 */
template <class F>
static inline void parallel_for(int64_t n, int64_t grain, F f, int chunks_per_thread = 1) {
  if (n <= 0) return;
  const int64_t threads = pool_threads();
  int64_t chunks = min64(ceil_div(n, max64(grain, 1)), threads * chunks_per_thread);
  if (chunks <= 1) {
    f(int64_t(0), n);
    return;
  }
  const int64_t step = ceil_div(n, chunks);
  chunks = ceil_div(n, step);
  auto task = [&](int64_t t) { f(t * step, min64(n, (t + 1) * step)); };
  run_tasks(chunks, task);
}

/** CPU time of the calling thread: unlike wall time it does not count time the thread was descheduled */
static double thread_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// Pointwise kernels below this many elements run on one thread.
constexpr int64_t kPointwiseGrain = 1 << 15;

// ------------------------------------------------------------------------------------------------ scratch

/**
 * Per-thread scratch buffers, reused across calls: a fresh multi-megabyte malloc per GEMM would be served by
 * mmap and pay page faults every time. 64-byte aligned. Slots are independent buffers.
 */
static thread_local float* tls_scratch[8];
static thread_local int64_t tls_scratch_cap[8];

static float* scratch(int slot, int64_t nfloats) {
  if (tls_scratch_cap[slot] < nfloats) {
    std::free(tls_scratch[slot]);
    const int64_t cap = max64(nfloats, int64_t(1024));
    const size_t bytes = static_cast<size_t>(ceil_div(cap * 4, 64) * 64);
    tls_scratch[slot] = static_cast<float*>(std::aligned_alloc(64, bytes));
    tls_scratch_cap[slot] = cap;
  }
  return tls_scratch[slot];
}

// ------------------------------------------------------------------------------------------------ math

/**
 * exp(x) for float32 with ~2 ulp relative error, written with plain arithmetic so loops that call it
 * vectorise (libm's expf does not). Range reduction x = n ln2 + r (ln2 split in two for accuracy), a degree-6
 * polynomial for e^r on |r| <= ln2/2 (Cephes expf coefficients), and 2^n built in the exponent bits.
 * Inputs are clamped to [-87, 88] so 2^n stays a normal float: exp(-inf) gives ~1e-38 instead of 0, which is
 * below anything a sum of probabilities can notice. NaN propagates.
 */
static inline float exp_approx(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  // round(x / ln2) with the 1.5*2^23 trick (round-to-nearest, no libm call)
  float n = x * 1.44269504088896341f + 12582912.0f;
  n -= 12582912.0f;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  return y * __builtin_bit_cast(float, bits);
}

/** sigmoid via exp of a clamped argument: exp_approx never overflows, so no branch on the sign is needed */
static inline float sigmoid_approx(float x) { return 1.0f / (1.0f + exp_approx(-x)); }


// ------------------------------------------------------------------------------------------------ GEMM
//
// BLIS-style: for each NC-wide panel of B and KC-deep slab, B is packed into NR-wide slivers (contiguous in
// k), then for each MC-tall block of A, A is packed into MR-tall slivers, and the micro-kernel multiplies one
// MR x KC sliver by one KC x NR sliver into an MR x NR tile of C held entirely in registers. The B sliver
// (KC x NR) stays in L1 across the MC/MR micro-kernel calls that reuse it; the packed A block stays in L2.
// Transposes are absorbed by the packing routines, so all four combinations share one compute path.

// One SIMD register's worth of floats and the five operations the micro-kernel and the peak probe need.
#if defined(__AVX512F__)
typedef __m512 vf;
constexpr int VL = 16;
static inline vf vzero() { return _mm512_setzero_ps(); }
static inline vf vset(float x) { return _mm512_set1_ps(x); }
static inline vf vload(const float* p) { return _mm512_loadu_ps(p); }
static inline void vstore(float* p, vf x) { _mm512_storeu_ps(p, x); }
static inline vf vfma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
static inline vf vadd(vf a, vf b) { return _mm512_add_ps(a, b); }
constexpr int MR = 12, NR = 32;  // 24 zmm accumulators + 2 for B: hides the FMA latency on both FMA pipes
constexpr bool kDirectRows = true;  // row-major A read in place (see gemm_serial)
constexpr int64_t kFixedKC = 512, kFixedMC = 96, kFixedNC = 1024;  // tuned on Zen 5 before blocks were derived
#elif defined(__AVX2__) && defined(__FMA__)
typedef __m256 vf;
constexpr int VL = 8;
static inline vf vzero() { return _mm256_setzero_ps(); }
static inline vf vset(float x) { return _mm256_set1_ps(x); }
static inline vf vload(const float* p) { return _mm256_loadu_ps(p); }
static inline void vstore(float* p, vf x) { _mm256_storeu_ps(p, x); }
static inline vf vfma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
static inline vf vadd(vf a, vf b) { return _mm256_add_ps(a, b); }
constexpr int MR = 6, NR = 16;  // 12 ymm accumulators
constexpr bool kDirectRows = true;  // row-major A read in place (see gemm_serial)
constexpr int64_t kFixedKC = 256, kFixedMC = 120, kFixedNC = 1024;
#elif defined(__aarch64__)
typedef float32x4_t vf;
constexpr int VL = 4;
static inline vf vzero() { return vdupq_n_f32(0.0f); }
static inline vf vset(float x) { return vdupq_n_f32(x); }
static inline vf vload(const float* p) { return vld1q_f32(p); }
static inline void vstore(float* p, vf x) { vst1q_f32(p, x); }
static inline vf vfma(vf a, vf b, vf c) { return vfmaq_f32(c, a, b); }
static inline vf vadd(vf a, vf b) { return vaddq_f32(a, b); }
constexpr int MR = 8, NR = 12;  // 24 of the 32 q registers as accumulators
constexpr bool kDirectRows = true;  // row-major A read in place (see gemm_serial)
constexpr int64_t kFixedKC = 256, kFixedMC = 128, kFixedNC = 1020;
#else
// Portable: a 4-float struct the compiler maps onto whatever vector unit the target has (SSE2 on x86-64).
struct vf {
  float v[4];
};
constexpr int VL = 4;
static inline vf vzero() { return vf{{0.0f, 0.0f, 0.0f, 0.0f}}; }
static inline vf vset(float x) { return vf{{x, x, x, x}}; }
static inline vf vload(const float* p) { return vf{{p[0], p[1], p[2], p[3]}}; }
static inline void vstore(float* p, vf x) {
  for (int i = 0; i < 4; i++) p[i] = x.v[i];
}
static inline vf vfma(vf a, vf b, vf c) {
  for (int i = 0; i < 4; i++) c.v[i] += a.v[i] * b.v[i];
  return c;
}
static inline vf vadd(vf a, vf b) {
  for (int i = 0; i < 4; i++) a.v[i] += b.v[i];
  return a;
}
constexpr int MR = 4, NR = 8;
// Row-major A read in place runs at a third of the packed speed here: the struct-of-4 vectors spill in that
// variant of the micro-kernel (1024x192x512: 9.5 against 31.6 GFLOP/s on Zen 5), so this table packs it.
constexpr bool kDirectRows = false;
constexpr int64_t kFixedKC = 256, kFixedMC = 128, kFixedNC = 1024;
#endif
constexpr int NV = NR / VL;  // vectors per micro-tile row

/** A strided read-only matrix view: element (i, j) is p[i * rs + j * cs] */
template <class T>
struct View {
  const T* p;
  int64_t rs, cs;
};
typedef View<float> MatView;
// a frozen bfloat16 weight read in place as B: its elements are bf16 bit patterns (see "bf16 weights" below)
typedef View<uint16_t> Bf16View;

/** a bf16 bit pattern as the float32 it is exactly (bf16 is the top half of a float32): no rounding */
static inline float bf16_widen(uint16_t h) { return __builtin_bit_cast(float, uint32_t(h) << 16); }

/** an element of a B operand as float32: itself, or a bf16 weight's value widened */
static inline float b_value(float x) { return x; }
static inline float b_value(uint16_t h) { return bf16_widen(h); }

// bfloat16 rounding (see "bfloat16 GEMM" below), here because the packing routines apply it as they copy.

/**
 * x rounded to the nearest bfloat16 (ties to even), as the top 16 bits of a float32; NaN stays a (quiet) NaN.
 * Branch-free, so the loops that call it vectorise.
 */
static inline uint32_t bf16_bits(float x) {
  const uint32_t u = __builtin_bit_cast(uint32_t, x);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const uint32_t quiet_nan = (u >> 16) | 0x40u;
  return (u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded;
}

static inline float bf16_round(float x) { return __builtin_bit_cast(float, bf16_bits(x) << 16); }

/** x, or x rounded to bf16: the packing routines' element copy */
template <bool kRound>
static inline float pack_value(float x) {
  return kRound ? bf16_round(x) : x;
}

/** p[0..n) rounded to bf16 in place: the packing routines' pass over a block they wrote with a strided scalar loop */
static inline void round_span(float* p, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) p[i] = bf16_round(p[i]);
}

#if defined(__AVX512F__)
/** bf16_round on 16 lanes */
static inline __m512 bf16_round16(__m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __m512i hi = _mm512_set1_epi32(int(0xffff0000u));
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_and_si512(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb), hi);
  const __m512i quiet = _mm512_and_si512(_mm512_or_si512(u, _mm512_set1_epi32(0x00400000)), hi);
  const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  return _mm512_castsi512_ps(_mm512_mask_mov_epi32(rounded, nan, quiet));
}
#endif

#if defined(__AVX512F__)
/**
 * d (16 rows, ldd apart; the lanes of store_mask) = the transpose of `rows` rows of 16 floats of src (lds apart; rows
 * past `rows` read as zero), by a 16x16 in-register transpose; kRound: each value rounded to bf16 first. What packing
 * a transposed operand into k-major slivers is: scalar, 16 x 12 load/store pairs per step were a quarter of the lm
 * head's dinp (pack_a), and 16 x 32 made the weight of every forward product (pack_b, B stored transposed) cost
 * more to pack than to multiply with a 256-row chunk of the fused head.
 */
template <bool kRound>
static inline void transpose16(float* d, int64_t ldd, __mmask16 store_mask, const float* src, int64_t lds, int rows) {
  __m512 r[16], t[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; i++) {
    r[i] = i < rows ? _mm512_loadu_ps(src + i * lds) : _mm512_setzero_ps();
    if (kRound) r[i] = bf16_round16(r[i]);
  }
  // per 128-bit lane: pairs of rows interleaved, then rows 4i..4i+3 of column 4L+j in r[4i+j] lane L
#pragma GCC unroll 8
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
#pragma GCC unroll 4
  for (int i = 0; i < 4; i++) {
    r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  // then the four lanes holding column 4L+j gathered in row order
#pragma GCC unroll 4
  for (int j = 0; j < 4; j++) {
    t[j] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88);
    t[4 + j] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xDD);
    t[8 + j] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88);
    t[12 + j] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xDD);
  }
#pragma GCC unroll 4
  for (int j = 0; j < 4; j++) {
    _mm512_mask_storeu_ps(d + (0 + j) * ldd, store_mask, _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88));
    _mm512_mask_storeu_ps(d + (4 + j) * ldd, store_mask, _mm512_shuffle_f32x4(t[4 + j], t[12 + j], 0x88));
    _mm512_mask_storeu_ps(d + (8 + j) * ldd, store_mask, _mm512_shuffle_f32x4(t[j], t[8 + j], 0xDD));
    _mm512_mask_storeu_ps(d + (12 + j) * ldd, store_mask, _mm512_shuffle_f32x4(t[4 + j], t[12 + j], 0xDD));
  }
}

/** d (16, MR) k-major = 16 floats of each of MR = 12 row-major rows (row stride lda) */
template <bool kRound>
static inline void pack_a_rows_x16(float* d, const float* src, int64_t lda) {
  static_assert(MR == 12, "the transpose stores 12 rows");
  transpose16<kRound>(d, MR, 0x0FFF, src, lda, MR);
}

/** d (16, NR) k-major = 16 floats along k of each of NR columns of a B stored transposed (column stride ldb) */
template <bool kRound>
static inline void pack_b_cols_x16(float* d, const float* src, int64_t ldb) {
  static_assert(NR % 16 == 0, "whole 16-column halves");
  for (int h = 0; h < NR; h += 16) transpose16<kRound>(d + h, NR, 0xFFFF, src + h * ldb, ldb, 16);
}
constexpr bool kPackARowsX16 = true;
#else
template <bool kRound>
static inline void pack_a_rows_x16(float*, const float*, int64_t) {}
template <bool kRound>
static inline void pack_b_cols_x16(float*, const float*, int64_t) {}
constexpr bool kPackARowsX16 = false;
#endif

constexpr int64_t kPackPrefetchRows = 24;  // how far ahead pack_a prefetches a transposed A's rows

/**
 * A (i0.., k0..) block of mc x kc -> MR-tall slivers, each laid out k-major (MR floats per k), zero padded;
 * kRound: rounded to bf16 on the way (one pass instead of a copy and a rounding pass)
 */
template <bool kRound>
static void pack_a(float* dst, MatView A, int64_t i0, int64_t mc, int64_t k0, int64_t kc) {
  if (A.rs == 1) {  // stored transposed: the block's mc floats at each k are contiguous
    // k outermost, so each row segment of A is read whole, once, in order: sliver by sliver, a transposed
    // lm-head gradient (column stride 32 KiB) came back 12 floats at a time and missed cache on every k
    for (int64_t k = 0; k < kc; k++) {
      const float* src = A.p + (k0 + k) * A.cs + i0;
      // each k is another page when the column stride is large, where the hardware prefetchers stop
      if (k + kPackPrefetchRows < kc)
        for (int64_t x = 0; x < mc; x += 16) __builtin_prefetch(src + kPackPrefetchRows * A.cs + x);
      for (int64_t s = 0; s < mc; s += MR) {
        float* dk = dst + s * kc + k * MR;
        const int64_t rows = min64(MR, mc - s);
        if (rows == MR) {
          if (kRound) {
#pragma omp simd
            for (int r = 0; r < MR; r++) dk[r] = bf16_round(src[s + r]);
          } else {
            std::memcpy(dk, src + s, sizeof(float) * MR);
          }
          continue;
        }
        int64_t r = 0;
        for (; r < rows; r++) dk[r] = pack_value<kRound>(src[s + r]);
        for (; r < MR; r++) dk[r] = 0.0f;
      }
    }
    return;
  }
  for (int64_t s = 0; s < mc; s += MR) {
    const int64_t rows = min64(MR, mc - s);
    float* d = dst + s * kc;
    // rows contiguous along k: transpose in 16-deep steps so the written block stays in L1
    for (int64_t kb = 0; kb < kc; kb += 16) {
      const int64_t kn = min64(16, kc - kb);
      if (kPackARowsX16 && kn == 16 && rows == MR && A.cs == 1) {
        pack_a_rows_x16<kRound>(d + kb * MR, A.p + (i0 + s) * A.rs + k0 + kb, A.rs);
        continue;
      }
      for (int64_t r = 0; r < rows; r++) {
        const float* src = A.p + (i0 + s + r) * A.rs + (k0 + kb) * A.cs;
        for (int64_t k = 0; k < kn; k++) d[(kb + k) * MR + r] = src[k * A.cs];
      }
      // rounding inside the strided loop above kept it scalar (12% slower products at hidden size 192)
      if (kRound) round_span(d + kb * MR, kn * MR);
    }
    for (int64_t r = rows; r < MR; r++)
      for (int64_t k = 0; k < kc; k++) d[k * MR + r] = 0.0f;
  }
}

/**
 * B (k0.., j0..) block of kc x nc -> NR-wide slivers, each laid out k-major (NR floats per k), zero padded; kRound: see
 * pack_a. A bf16 weight (TB = uint16_t) is widened as it is copied: exact, so it needs no rounding on the fma path.
 */
template <bool kRound, class TB>
static void pack_b(float* dst, View<TB> B, int64_t k0, int64_t kc, int64_t j0, int64_t nc) {
  for (int64_t s = 0; s < nc; s += NR) {
    const int64_t cols = min64(NR, nc - s);
    float* d = dst + s * kc;
    if (B.cs == 1) {  // row-major: NR consecutive floats per k
      for (int64_t k = 0; k < kc; k++) {
        const TB* src = B.p + (k0 + k) * B.rs + (j0 + s);
        float* dk = d + k * NR;
        if (cols == NR) {
#pragma omp simd
          for (int64_t j = 0; j < NR; j++) dk[j] = pack_value<kRound>(b_value(src[j]));
          continue;
        }
        int64_t j = 0;
        for (; j < cols; j++) dk[j] = pack_value<kRound>(b_value(src[j]));
        for (; j < NR; j++) dk[j] = 0.0f;
      }
    } else {  // stored transposed, columns contiguous along k: transpose in 16-deep steps (see pack_a)
      for (int64_t kb = 0; kb < kc; kb += 16) {
        const int64_t kn = min64(16, kc - kb);
        if constexpr (kPackARowsX16 && sizeof(TB) == sizeof(float)) {
          if (kn == 16 && cols == NR && B.rs == 1) {  // whole slivers of a float weight: in registers
            pack_b_cols_x16<kRound>(d + kb * NR, B.p + (k0 + kb) + (j0 + s) * B.cs, B.cs);
            continue;
          }
        }
        for (int64_t j = 0; j < cols; j++) {
          const TB* src = B.p + (k0 + kb) * B.rs + (j0 + s + j) * B.cs;
          for (int64_t k = 0; k < kn; k++) d[(kb + k) * NR + j] = b_value(src[k * B.rs]);
        }
        if (kRound) round_span(d + kb * NR, kn * NR);  // (see pack_a)
      }
      for (int64_t j = cols; j < NR; j++)
        for (int64_t k = 0; k < kc; k++) d[k * NR + j] = 0.0f;
    }
  }
}

/**
 * The dpbf16 path's B slivers straight from a bf16 weight's bits: (ceil(kc/2), NR) 32-bit pairs, row k0 + 2p in the
 * low half and k0 + 2p + 1 in the high half (0 past kc), zero padded: what to_bf16_pairs makes of the packed sliver of
 * the widened weight, so the products and their order are bf16 mode's. No float copy and no rounding on the way.
 */
static void pack_b_bf16_pairs(uint32_t* dst, Bf16View B, int64_t k0, int64_t kc, int64_t j0, int64_t nc) {
  const int64_t kp = (kc + 1) / 2;
  for (int64_t s = 0; s < nc; s += NR) {
    const int64_t cols = min64(NR, nc - s);
    uint32_t* d = dst + s * kp;
    if (B.cs == 1) {  // row-major (the backward's weight): rows 2p and 2p + 1 interleaved
      for (int64_t p = 0; p < kp; p++) {
        const uint16_t* r0 = B.p + (k0 + 2 * p) * B.rs + (j0 + s);
        const uint16_t* r1 = r0 + B.rs;
        const bool whole = 2 * p + 1 < kc;
        uint32_t* dp = d + p * NR;
        if (cols == NR && whole) {
#pragma omp simd
          for (int64_t j = 0; j < NR; j++) dp[j] = uint32_t(r0[j]) | uint32_t(r1[j]) << 16;
          continue;
        }
        int64_t j = 0;
        for (; j < cols; j++) dp[j] = uint32_t(r0[j]) | (whole ? uint32_t(r1[j]) << 16 : 0u);
        for (; j < NR; j++) dp[j] = 0u;
      }
    } else {  // stored transposed (the forward's weight): a pair is two neighbours of one column's k run
      // 16 pairs deep at a time, so the written block stays in L1 while the columns are gathered (see pack_a)
      for (int64_t pb = 0; pb < kp; pb += 16) {
        const int64_t pn = min64(16, kp - pb);
        for (int64_t j = 0; j < cols; j++) {
          const uint16_t* src = B.p + (k0 + 2 * pb) * B.rs + (j0 + s + j) * B.cs;
          for (int64_t p = 0; p < pn; p++) {
            const bool whole = 2 * (pb + p) + 1 < kc;
            const uint32_t lo = src[2 * p * B.rs], hi = whole ? src[(2 * p + 1) * B.rs] : 0u;
            d[(pb + p) * NR + j] = lo | hi << 16;
          }
        }
      }
      for (int64_t p = 0; p < kp; p++)
        for (int64_t j = cols; j < NR; j++) d[p * NR + j] = 0u;
    }
  }
}

/**
 * c (MR,NR) row stride ldc = A (MR,kc) x B sliver (kc,NR), added to c when `add_to_c`. A's MR values for one k
 * are either consecutive (kUnitRows: a packed sliver, lda = MR, or a transposed matrix read in place, lda = its
 * column stride) and the next k is lda further, or MR rows of a row-major matrix read in place (row stride lda)
 * and the next k is the next float.
 */
template <bool kUnitRows>
static inline void micro_kernel(int64_t kc, const float* __restrict A, int64_t lda, const float* __restrict B,
                                float* c, int64_t ldc, bool add_to_c) {
  vf acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) acc[r][j] = vzero();
  for (int64_t k = 0; k < kc; k++) {
    vf b[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) b[j] = vload(B + j * VL);
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++) {
      const vf a = vset(kUnitRows ? A[r] : A[r * lda]);
#pragma GCC unroll 4
      for (int j = 0; j < NV; j++) acc[r][j] = vfma(a, b[j], acc[r][j]);
    }
    A += kUnitRows ? lda : 1;
    B += NR;
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; r++) {
    float* cr = c + r * ldc;
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) vstore(cr + j * VL, add_to_c ? vadd(acc[r][j], vload(cr + j * VL)) : acc[r][j]);
  }
}

// ------------------------------------------------------------------------------------------------ bfloat16 GEMM
//
// With matmul_bf16() on, both operands are rounded to bfloat16 (round to nearest even, as PyTorch's
// .to(torch.bfloat16)) and their products summed in float32. Two paths compute exactly that, differing only in the
// order of the float32 sums (a product of two bf16 values is exact in float32, so neither rounds a product):
//   dpbf16: the packed slivers are rewritten as bf16 pairs along k and VDPBF16PS does two products per lane. On
//     Zen 5 that is 1.7x the float32 GEMM; on Sapphire Rapids it issues on one port, no more throughput than FMA on
//     two, and the bf16 training step measured 30% slower than float32 there (issue 16). Needs AVX512_BF16 (and
//     this table's 12x32 micro-tile). Its sums round to nearest even like the FMA path's, but the instruction treats
//     subnormal inputs and results as zero (below 1.2e-38: nothing a training step can see).
//   fma: the operands are rounded to bf16 as float32 values and go through the float32 micro-kernel. Any CPU.
//   amx: TDPBF16PS on Intel's AMX tiles (Sapphire Rapids and later), with its own packing (16x32 bf16 tiles of A, VNNI
//     pairs of B) and 32x32 micro-kernel in amx_impl.h, tested on emulated tiles by native/test/amx.cc. The AVX-512
//     table only, where CPUID has AMX-TILE and AMX-BF16, Linux grants the tile state and the start-up check passed
//     (amx::usable). DAZ/FTZ as dpbf16.
// Which is faster is measured, not assumed from the flags: the first bf16 GEMM (or gemm_info) times each on one
// thread (bf16_choice below); ORPO_BF16_KERNEL=fma|dpbf16|amx forces one.

#if defined(__AVX512F__) && defined(__x86_64__)
constexpr bool kBf16Kernel = MR == 12 && NR == 32;

static bool cpu_has_avx512bf16() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16");
  }();
  return has;
}

/**
 * A packed sliver (kc, MR) k-major -> (ceil(kc/2), MR) 32-bit pairs: the bf16 of rows k = 2p (low half) and
 * 2p + 1 (high half, 0 past kc). B slivers (kc, NR) the same with NR columns: `width` floats per k.
 */
static void to_bf16_pairs(uint32_t* dst, const float* src, int64_t kc, int64_t width) {
  int64_t p = 0;
  for (; 2 * p + 1 < kc; p++) {
    const float* r0 = src + 2 * p * width;
    const float* r1 = r0 + width;
    uint32_t* d = dst + p * width;
#pragma omp simd
    for (int64_t j = 0; j < width; j++) d[j] = bf16_bits(r0[j]) | bf16_bits(r1[j]) << 16;
  }
  if (2 * p < kc) {  // odd kc: the last pair's high half is zero
    const float* r0 = src + 2 * p * width;
    uint32_t* d = dst + p * width;
    for (int64_t j = 0; j < width; j++) d[j] = bf16_bits(r0[j]);
  }
}

/** micro_kernel over bf16 pairs: c (MR,NR) [+]= A pairs (kp, MR) x B pairs (kp, NR), VDPBF16PS */
__attribute__((target("avx512bf16"))) static void micro_kernel_bf16(int64_t kp, const uint32_t* __restrict A,
                                                                     const uint32_t* __restrict B, float* c,
                                                                     int64_t ldc, bool add_to_c) {
  __m512 acc[MR][2];
#pragma GCC unroll 12
  for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kp; p++) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(B + p * NR);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(B + p * NR + 16);
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++) {
      const __m512bh a = (__m512bh)_mm512_set1_epi32(static_cast<int>(A[p * MR + r]));
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], a, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], a, b1);
    }
  }
#pragma GCC unroll 12
  for (int r = 0; r < MR; r++) {
    float* cr = c + r * ldc;
    for (int j = 0; j < 2; j++)
      _mm512_storeu_ps(cr + 16 * j, add_to_c ? _mm512_add_ps(acc[r][j], _mm512_loadu_ps(cr + 16 * j)) : acc[r][j]);
  }
}
#else
constexpr bool kBf16Kernel = false;
static bool cpu_has_avx512bf16() { return false; }
static void to_bf16_pairs(uint32_t*, const float*, int64_t, int64_t) {}
static void micro_kernel_bf16(int64_t, const uint32_t*, const uint32_t*, float*, int64_t, bool) {}
#endif

static bool dpbf16_available() { return kBf16Kernel && cpu_has_avx512bf16(); }

// amx.cc is built into the AVX-512 library only: the other tables never name it
#if defined(__AVX512F__) && defined(__x86_64__)
static bool amx_available() { return amx::usable(); }
#else
static bool amx_available() { return false; }
#endif

// ------------------------------------------------------------------------------------------------ GEMM plan
//
// What one GEMM call runs with, fixed before any thread starts: the cache blocks and the arithmetic.

constexpr int kModeF32 = 0, kModeBf16Fma = 1, kModeBf16Dp = 2, kModeBf16Amx = 3;

struct GemmPlan {
  int64_t kc, mc, nc;
  int mode;
};

struct Blocks {
  int64_t kc, mc, nc;
  const char* source;
};

static int64_t round_down(int64_t x, int64_t m) { return max64(m, x / m * m); }

/**
 * The cache blocks from the detected cache sizes, for this table's loop order: the B panel (KC x NC) is packed once
 * per (NC, KC) step, then each packed A block (MC x KC) is multiplied by every B sliver (KC x NR) of the panel, each
 * B sliver reused across the block's MC/MR micro-kernel calls.
 *   MC: the table's constant (8 micro-tiles on AVX-512; 48 to 192 rows measured the same on Zen 5).
 *   KC: as deep as L2 allows: the A block and one B sliver in a quarter of one core's L2 (the rest is left to the
 *       B slivers streaming through and to C), 256 to 1024. Both operands stream from L2 at these depths (a B
 *       sliver at KC 512 is 64 KiB, more than L1d), so depth is limited by L2, not L1; what depth buys is fewer
 *       round trips of the C tile per flop: on Zen 5 (1 MiB L2) KC 256 was 4% slower than 512, 768 and 1024 the
 *       same as 512. 1 MiB gives 512 (AVX-512), 2 MiB (Sapphire Rapids) 1024, 256 KiB (older client cores) 256.
 *   NC: the B panel (KC x NC) in half of one core's share of L3 (the L3 divided by the logical CPUs sharing it, or
 *       by all online CPUs when the CPU does not say), 512 to 2048 columns: on Zen 5, 256 was 3% slower and 128 6%
 *       (each A block then meets too few B slivers), 512 to 2048 the same.
 * No sizes detected: the fixed blocks above.
 */
static Blocks derive_blocks(const CacheSizes& cs) {
  if (cs.l1d <= 0 || cs.l2 <= 0) return Blocks{kFixedKC, kFixedMC, kFixedNC, "fixed"};
  const int64_t mc = kFixedMC;
  const int64_t kc = max64(256, min64(1024, cs.l2 / 4 / (4 * (mc + NR)) / 16 * 16));
  const int64_t sharing = cs.l3_sharing > 0 ? cs.l3_sharing : max64(1, cs.cpus);
  const int64_t l3_share = cs.l3 > 0 ? cs.l3 / sharing : 0;
  const int64_t nc_wanted = l3_share > 0 ? l3_share / 2 / (4 * kc) : kFixedNC;
  const int64_t nc = round_down(max64(512, min64(2048, nc_wanted)), NR);
  return Blocks{kc, mc, nc, "cache sizes"};
}

/** "KC,MC,NC" -> blocks (MC and NC rounded down to whole micro-tiles, at least one), or false */
static bool parse_blocks(const char* s, Blocks* out) {
  long v[3];
  int used = 0;
  if (std::sscanf(s, "%ld,%ld,%ld%n", &v[0], &v[1], &v[2], &used) != 3 || s[used] != '\0') return false;
  // bounded so the packing buffers (KC x NC and KC x MC floats per thread) stay allocatable
  if (v[0] < 1 || v[1] < 1 || v[2] < 1 || v[0] > 4096 || v[1] > 4096 || v[2] > 8192) return false;
  *out = Blocks{v[0], round_down(v[1], MR), round_down(v[2], NR), "ORPO_GEMM_BLOCKS"};
  return true;
}

/** the blocks a process starts with: ORPO_GEMM_BLOCKS=fixed|derived|KC,MC,NC, else derived */
static Blocks initial_blocks() {
  const char* env = std::getenv("ORPO_GEMM_BLOCKS");
  Blocks b;
  if (env && std::strcmp(env, "fixed") == 0) return Blocks{kFixedKC, kFixedMC, kFixedNC, "fixed"};
  if (env && *env && std::strcmp(env, "derived") != 0) {
    if (parse_blocks(env, &b)) return b;
    std::fprintf(stderr, "orpo: ignoring ORPO_GEMM_BLOCKS=%s (want fixed, derived or KC,MC,NC)\n", env);
  }
  return derive_blocks(cache_sizes());
}

// The process-wide choices live behind pointers to immutable records, swapped atomically (gemm_configure may
// replace them; readers copy what they need into the GemmPlan before any thread starts). Replaced records are
// leaked: a few dozen bytes per diagnostic call.
static const Blocks* g_blocks = nullptr;

static const Blocks& gemm_blocks() {
  const Blocks* b = __atomic_load_n(&g_blocks, __ATOMIC_ACQUIRE);
  if (b) return *b;
  Blocks* fresh = new Blocks(initial_blocks());
  const Blocks* expected = nullptr;
  if (__atomic_compare_exchange_n(&g_blocks, &expected, fresh, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return *fresh;
  delete fresh;
  return *expected;
}

struct Bf16Choice {
  int mode;  // kModeBf16Fma, kModeBf16Dp or kModeBf16Amx
  const char* source;
  double f32, fma, dp, amx;  // probe GFLOP/s
};

static const Bf16Choice* g_bf16 = nullptr;

template <class TB>
static void gemm_serial(float* c, int64_t ldc, MatView A, View<TB> B, int64_t M, int64_t N, int64_t K, bool acc,
                        const GemmPlan& plan);

/**
 * Single-thread GFLOP/s of each path on one mid-sized product, the shape of a linear layer's forward (weights stored
 * transposed), by the thread's CPU clock: best of up to 5 interleaved rounds after a warm-up, 2 when a round takes
 * over 5 ms (the portable build). About 10 ms once per process on an AVX-512 core, half of it the first touch of the
 * buffers; a smaller product would exaggerate the packing, which the paths do differently.
 */
static void probe_paths(double* f32, double* fma, double* dp, double* amx) {
  constexpr int64_t M = 192, N = 384, K = 256;  // two A blocks of 12 B slivers: every step of the blocked loop
  float* buf = static_cast<float*>(std::aligned_alloc(64, sizeof(float) * (M * K + N * K + M * N)));
  float* a = buf;
  float* b = a + M * K;
  float* c = b + N * K;
  uint32_t x = 12345;
  for (int64_t i = 0; i < M * K + N * K; i++) {
    x = x * 1664525u + 1013904223u;
    buf[i] = float(int32_t(x >> 8) - (1 << 23)) * (1.0f / (1 << 23));
  }
  const Blocks& blk = gemm_blocks();
  const bool has_dp = dpbf16_available(), has_amx = amx_available();
  const int modes[4] = {kModeF32, kModeBf16Fma, kModeBf16Dp, kModeBf16Amx};
  double best[4] = {1e30, 1e30, 1e30, 1e30};
  const MatView Av{a, K, 1}, Bv{b, 1, K};
  for (int round = 0; round < 6; round++) {  // round 0 warms the caches and the scratch buffers up
    const double r0 = thread_cpu_seconds();
    for (int m = 0; m < 4; m++) {
      if ((modes[m] == kModeBf16Dp && !has_dp) || (modes[m] == kModeBf16Amx && !has_amx)) continue;
      const GemmPlan plan{blk.kc, blk.mc, blk.nc, modes[m]};
      const double t0 = thread_cpu_seconds();
      gemm_serial(c, N, Av, Bv, M, N, K, false, plan);
      const double t = thread_cpu_seconds() - t0;
      if (round > 0 && t < best[m]) best[m] = t;
    }
    if (round >= 2 && thread_cpu_seconds() - r0 > 5e-3) break;
  }
  std::free(buf);
  const double flops = 2.0 * M * N * K;
  *f32 = flops / best[0] * 1e-9;
  *fma = flops / best[1] * 1e-9;
  *dp = has_dp ? flops / best[2] * 1e-9 : 0.0;
  *amx = has_amx ? flops / best[3] * 1e-9 : 0.0;
}

/** the probe's fastest bf16 path among those this CPU can run */
static int fastest_bf16(const Bf16Choice& ch) {
  int mode = kModeBf16Fma;
  double best = ch.fma;
  if (dpbf16_available() && ch.dp > best) {
    mode = kModeBf16Dp;
    best = ch.dp;
  }
  if (amx_available() && ch.amx > best) mode = kModeBf16Amx;
  return mode;
}

/** the choice's source when nobody forced a path: "only" where fma is the one path this CPU has */
static const char* probe_source() { return dpbf16_available() || amx_available() ? "probe" : "only"; }

/** ORPO_BF16_KERNEL, else the probe's fastest path */
static Bf16Choice initial_bf16() {
  Bf16Choice ch{kModeBf16Fma, "probe", 0, 0, 0, 0};
  probe_paths(&ch.f32, &ch.fma, &ch.dp, &ch.amx);
  const char* env = std::getenv("ORPO_BF16_KERNEL");
  if (env && std::strcmp(env, "fma") == 0) {
    ch.mode = kModeBf16Fma;
    ch.source = "ORPO_BF16_KERNEL";
  } else if (env && std::strcmp(env, "dpbf16") == 0 && dpbf16_available()) {
    ch.mode = kModeBf16Dp;
    ch.source = "ORPO_BF16_KERNEL";
  } else if (env && std::strcmp(env, "amx") == 0 && amx_available()) {
    ch.mode = kModeBf16Amx;
    ch.source = "ORPO_BF16_KERNEL";
  } else {
    if (env && *env && std::strcmp(env, "auto") != 0)
      std::fprintf(stderr, "orpo: ignoring ORPO_BF16_KERNEL=%s (%s)\n", env,
                   std::strcmp(env, "dpbf16") == 0 ? "this CPU or kernel table has no VDPBF16PS"
                   : std::strcmp(env, "amx") == 0  ? "this CPU, kernel table or OS has no usable AMX"
                                                   : "want auto, fma, dpbf16 or amx");
    ch.source = probe_source();
    ch.mode = fastest_bf16(ch);
  }
  return ch;
}

static const Bf16Choice& bf16_choice() {
  const Bf16Choice* b = __atomic_load_n(&g_bf16, __ATOMIC_ACQUIRE);
  if (b) return *b;
  Bf16Choice* fresh = new Bf16Choice(initial_bf16());
  const Bf16Choice* expected = nullptr;
  if (__atomic_compare_exchange_n(&g_bf16, &expected, fresh, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return *fresh;
  delete fresh;
  return *expected;
}

/** the plan of the next GEMM: blocks, and the bf16 path when bf16 is on (probing on first use) */
static GemmPlan gemm_plan() {
  const Blocks& b = gemm_blocks();
  return GemmPlan{b.kc, b.mc, b.nc, matmul_bf16() ? bf16_choice().mode : kModeF32};
}

static void gemm_info(GemmInfo* out) {
  const Blocks& b = gemm_blocks();
  const Bf16Choice& ch = bf16_choice();
  const char* kernel = ch.mode == kModeBf16Dp ? "dpbf16" : ch.mode == kModeBf16Amx ? "amx" : "fma";
  *out = GemmInfo{MR,     NR,     b.kc,  b.mc, b.nc, b.source, kernel, ch.source, dpbf16_available(),
                  ch.f32, ch.fma, ch.dp, amx_available(), ch.amx};
}

static bool gemm_configure(const char* bf16_kernel, const char* blocks) {
  Blocks nb{};
  if (blocks) {
    if (std::strcmp(blocks, "fixed") == 0) nb = Blocks{kFixedKC, kFixedMC, kFixedNC, "fixed"};
    else if (std::strcmp(blocks, "derived") == 0) nb = derive_blocks(cache_sizes());
    else if (parse_blocks(blocks, &nb)) nb.source = "set";
    else return false;
  }
  int mode = -1;
  if (bf16_kernel) {
    if (std::strcmp(bf16_kernel, "fma") == 0) mode = kModeBf16Fma;
    else if (std::strcmp(bf16_kernel, "dpbf16") == 0 && dpbf16_available()) mode = kModeBf16Dp;
    else if (std::strcmp(bf16_kernel, "amx") == 0 && amx_available()) mode = kModeBf16Amx;
    else if (std::strcmp(bf16_kernel, "auto") != 0) return false;
  }
  if (blocks) __atomic_store_n(&g_blocks, new Blocks(nb), __ATOMIC_RELEASE);
  if (bf16_kernel) {
    const Bf16Choice& cur = bf16_choice();  // keeps the probe's numbers
    Bf16Choice* next = new Bf16Choice(cur);
    if (mode < 0) {
      next->mode = fastest_bf16(cur);
      next->source = probe_source();
    } else {
      next->mode = mode;
      next->source = "set";
    }
    __atomic_store_n(&g_bf16, next, __ATOMIC_RELEASE);
  }
  return true;
}

/**
 * One thread's GEMM: c (M,N) row stride ldc [+]= A (M,K) @ B (K,N), both strided views; B float32 or a bf16 weight
 * (TB = uint16_t, only with a bf16 plan: its products are bf16 products)
 */
template <class TB>
static void gemm_serial(float* c, int64_t ldc, MatView A, View<TB> B, int64_t M, int64_t N, int64_t K, bool acc,
                        const GemmPlan& plan) {
  constexpr bool kBf16B = sizeof(TB) == 2;
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!acc)
      for (int64_t i = 0; i < M; i++) std::memset(c + i * ldc, 0, static_cast<size_t>(N) * 4);
    return;
  }
#if defined(__AVX512F__) && defined(__x86_64__)
  if (plan.mode == kModeBf16Amx) {  // its own packing and micro-kernel (amx_impl.h), the same blocks
    amx::gemm_serial(c, ldc, A.p, A.rs, A.cs, B.p, B.rs, B.cs, M, N, K, acc, plan.kc, plan.mc, plan.nc);
    return;
  }
#endif
  const int64_t KC = plan.kc, MC = plan.mc, NC = plan.nc;
  float* bp = scratch(0, KC * min64(NC, ceil_div(N, NR) * NR));
  float* ap = scratch(1, KC * min64(MC, ceil_div(M, MR) * MR));
  alignas(64) float tile[MR * NR];
  // A row-major A is read in place (full MR-row slivers broadcast straight from its rows) rather than packed:
  // packing costs a transposing copy of A per NC columns, a third of the time when N is a small hidden size
  // (192).
  // Except when A's row stride is a multiple of 4 KiB (hidden sizes 1024, 2048, 3072, ...): then the MR rows of a
  // sliver fall into the same L1 sets and evict each other (measured 142 vs 180 GFLOP/s at 1024^3), so pack.
  // A stored transposed (dweight = dout^T @ inp) is read in place too, MR consecutive floats per k: packing it
  // was a quarter of dweight's time at hidden size 192 (strided gathers of a 1.5 MB operand), with the same
  // 4 KiB rule for its column stride.
  // bf16: both operands are packed (and rounded there); on the dpbf16 path as bf16 pairs for VDPBF16PS
  const bool bf16 = plan.mode != kModeF32;
  const bool pairs = plan.mode == kModeBf16Dp;
  const int64_t kpmax = ceil_div(KC, 2);
  uint32_t* bpairs = pairs ? reinterpret_cast<uint32_t*>(scratch(6, kpmax * min64(NC, ceil_div(N, NR) * NR))) : nullptr;
  uint32_t* apairs = pairs ? reinterpret_cast<uint32_t*>(scratch(7, kpmax * min64(MC, ceil_div(M, MR) * MR))) : nullptr;
  const bool direct_a = !bf16 && ((kDirectRows && A.cs == 1 && A.rs % 1024 != 0) || (A.rs == 1 && A.cs % 1024 != 0));
  const bool direct_a_transposed = A.rs == 1;
  for (int64_t jc = 0; jc < N; jc += NC) {
    const int64_t nc = min64(NC, N - jc);
    for (int64_t pc = 0; pc < K; pc += KC) {
      const int64_t kc = min64(KC, K - pc);
      const bool acc_here = acc || pc > 0;
      const int64_t kp = (kc + 1) / 2;  // bf16 pairs along k
      if constexpr (kBf16B) {
        // a bf16 weight already is bf16: widened exactly for the fma path, its bits paired for the dpbf16 path
        if (pairs) pack_b_bf16_pairs(bpairs, B, pc, kc, jc, nc);
        else pack_b<false>(bp, B, pc, kc, jc, nc);
      } else {
        // rounded while packed on the fma path; the dpbf16 path rounds as it makes the pairs
        if (plan.mode == kModeBf16Fma) pack_b<true>(bp, B, pc, kc, jc, nc);
        else pack_b<false>(bp, B, pc, kc, jc, nc);
        if (pairs)
          for (int64_t s = 0; s < nc; s += NR) to_bf16_pairs(bpairs + s * kp, bp + s * kc, kc, NR);
      }
      for (int64_t ic = 0; ic < M; ic += MC) {
        const int64_t mc = min64(MC, M - ic);
        const int64_t full = direct_a ? mc / MR * MR : 0;  // rows read in place; the rest is packed
        if (plan.mode == kModeBf16Fma) pack_a<true>(ap, A, ic + full, mc - full, pc, kc);
        else pack_a<false>(ap, A, ic + full, mc - full, pc, kc);
        if (pairs)
          for (int64_t s = 0; s < mc; s += MR) to_bf16_pairs(apairs + s * kp, ap + s * kc, kc, MR);
        for (int64_t jr = 0; jr < nc; jr += NR) {
          const int64_t nr = min64(NR, nc - jr);
          const float* bs = bp + jr * kc;
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int64_t mr = min64(MR, mc - ir);
            float* ct = c + (ic + ir) * ldc + (jc + jr);
            const bool edge = mr < MR || nr < NR;
            // an edge tile is computed whole into a buffer and only its valid part copied out
            float* dst = edge ? tile : ct;
            const int64_t ld = edge ? NR : ldc;
            const bool add = edge ? false : acc_here;
            if (pairs) micro_kernel_bf16(kp, apairs + ir * kp, bpairs + jr * kp, dst, ld, add);
            else if (ir >= full) micro_kernel<true>(kc, ap + (ir - full) * kc, MR, bs, dst, ld, add);
            else if (direct_a_transposed) micro_kernel<true>(kc, A.p + pc * A.cs + (ic + ir), A.cs, bs, dst, ld, add);
            else micro_kernel<false>(kc, A.p + (ic + ir) * A.rs + pc, A.rs, bs, dst, ld, add);
            if (edge) {
              for (int64_t r = 0; r < mr; r++)
                for (int64_t j = 0; j < nr; j++)
                  ct[r * ldc + j] = acc_here ? ct[r * ldc + j] + tile[r * NR + j] : tile[r * NR + j];
            }
          }
        }
      }
    }
  }
}

/**
 * Threads split C into independent row or column strips (whichever dimension has more micro-tiles), each
 * running the whole blocked algorithm on its strip: no barriers, no shared packing buffers. Each thread packs
 * the full shared operand for itself, which costs K*(M or N) copies against 2*M*N*K/threads flops.
 */
/**
 * A few rows (a decoding step's single token): packing B would copy every element of it to use it M times, so
 * C is computed straight from B in place, threads splitting the columns. B row-major: c_i += a_ik B_k,
 * vectorised over columns; B stored transposed: c_ij = a_i . b_j, vectorised over k.
 */
constexpr int64_t kSmallM = 4;

/**
 * B may be a bf16 weight (TB = uint16_t): then it is widened element by element as the loops read it (packing or
 * widening it first would copy the whole weight per decoded token) and A's rows are rounded to bf16 as they are made
 * contiguous: bf16 products, float32 sums, as the packed paths. Both bf16 paths take this one: it is bound by reading
 * the weight (each element is used M <= 4 times), which bf16 halves, not by the multiplies.
 */
template <class TB>
static void gemm_small_m(float* c, MatView A, View<TB> B, int64_t M, int64_t N, int64_t K, bool acc) {
  constexpr bool kBf16B = sizeof(TB) == 2;
  float* arows = scratch(1, M * K);  // A's rows made contiguous (A may be stored transposed)
  for (int64_t i = 0; i < M; i++)
    for (int64_t k = 0; k < K; k++) arows[i * K + k] = pack_value<kBf16B>(A.p[i * A.rs + k * A.cs]);
  // Every element of B is read once per call: the loops keep the M rows of C (row-major B) or the current
  // four columns of B (B stored transposed) in cache while all M rows use them.
  parallel_for(N, max64(NR, ceil_div(kPointwiseGrain, max64(K * M, 1))), [=](int64_t j0, int64_t j1) {
    if (B.cs == 1) {
      // C's columns summed in a local block over all of K and stored once: adding into c at every k made the threads
      // on either side of a column split write one cache line K times (false sharing: the 1-row bf16 backward ran 3x
      // slower on 2 threads than on 1). The same sums in the same order as adding into c.
      constexpr int64_t kJB = 256;
      alignas(64) float tile[kSmallM][kJB];
      for (int64_t jb = j0; jb < j1; jb += kJB) {
        const int64_t jn = min64(kJB, j1 - jb);
        for (int64_t i = 0; i < M; i++)
          for (int64_t j = 0; j < jn; j++) tile[i][j] = acc ? c[i * N + jb + j] : 0.0f;
        for (int64_t k = 0; k < K; k++) {
          const TB* bk = B.p + k * B.rs + jb;
          for (int64_t i = 0; i < M; i++) {
            const float aik = arows[i * K + k];
            float* ti = tile[i];
#pragma omp simd
            for (int64_t j = 0; j < jn; j++) ti[j] += aik * b_value(bk[j]);
          }
        }
        for (int64_t i = 0; i < M; i++) std::memcpy(c + i * N + jb, tile[i], static_cast<size_t>(jn) * 4);
      }
      return;
    }
    // B.rs == 1: column j of B is b[j * K .. j * K + K)
    int64_t j = j0;
    for (; j + 4 <= j1; j += 4) {  // four dot products at once: four independent add chains
      const TB* b0 = B.p + j * B.cs;
      const TB* b1 = b0 + B.cs;
      const TB* b2 = b1 + B.cs;
      const TB* b3 = b2 + B.cs;
      for (int64_t i = 0; i < M; i++) {
        const float* ai = arows + i * K;
        float d0 = 0.0f, d1 = 0.0f, d2 = 0.0f, d3 = 0.0f;
#pragma omp simd reduction(+ : d0, d1, d2, d3)
        for (int64_t k = 0; k < K; k++) {
          d0 += ai[k] * b_value(b0[k]);
          d1 += ai[k] * b_value(b1[k]);
          d2 += ai[k] * b_value(b2[k]);
          d3 += ai[k] * b_value(b3[k]);
        }
        float* ci = c + i * N + j;
        ci[0] = acc ? ci[0] + d0 : d0;
        ci[1] = acc ? ci[1] + d1 : d1;
        ci[2] = acc ? ci[2] + d2 : d2;
        ci[3] = acc ? ci[3] + d3 : d3;
      }
    }
    for (; j < j1; j++) {
      const TB* bj = B.p + j * B.cs;
      for (int64_t i = 0; i < M; i++) {
        const float* ai = arows + i * K;
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int64_t k = 0; k < K; k++) dot += ai[k] * b_value(bj[k]);
        c[i * N + j] = acc ? c[i * N + j] + dot : dot;
      }
    }
  });
}

/** c (M,N) [+]= A @ B on the pool with `plan`: how the threads share one GEMM */
template <class TB>
static void gemm_threads(float* c, MatView A, View<TB> B, int64_t M, int64_t N, int64_t K, bool accumulate,
                         const GemmPlan& plan) {
  const int64_t threads = pool_threads();
  const double flops = 2.0 * double(M) * double(N) * double(K);
  // A long reduction into a small C (a weight gradient, dout^T @ inp over every token): splitting C would hand
  // each thread all of K and make each pack the whole shared operand (2 threads ran dweight at 1.5-1.7x).
  // Instead K is cut into two fixed halves, the second summed into a buffer and then added to C. The cut does
  // not depend on the thread count, so neither does the result (1 thread does both halves in turn).
  // C is capped at the size of one core's L2 (1 MiB where this was measured; 1 MiB when it is not known): the lm
  // head's dinp (2048 x 192, K = vocab) measured 3% slower split this way at 2 threads on a 1 MiB L2.
  // K >= 1024: each half at least one K block of the blocks this was tuned with (512).
  const int64_t l2 = cache_sizes().l2 > 0 ? cache_sizes().l2 : int64_t(1) << 20;
  if (flops >= 2e6 && K >= 1024 && K >= 4 * max64(M, N) && M * N * 4 <= l2) {
    const int64_t kh = K / 2;
    float* part = scratch(2, M * N);  // the calling thread's slot 2: gemm_serial uses slots 0, 1, 6 and 7
    const MatView A1{A.p + kh * A.cs, A.rs, A.cs};
    const View<TB> B1{B.p + kh * B.rs, B.rs, B.cs};
    auto half = [&](int64_t t) {
      if (t == 0) gemm_serial(c, N, A, B, M, N, kh, accumulate, plan);
      else gemm_serial(part, N, A1, B1, M, N, K - kh, false, plan);
    };
    if (threads >= 2) {
      run_tasks(2, half);
    } else {
      half(0);
      half(1);
    }
#pragma omp simd
    for (int64_t x = 0; x < M * N; x++) c[x] += part[x];
    return;
  }
  // strips in whole micro-tiles: MR x NR, or the amx path's 32 x 32 (12-row strips would pad each to 32 rows)
  const int64_t mr = plan.mode == kModeBf16Amx ? 32 : MR, nr = plan.mode == kModeBf16Amx ? 32 : NR;
  const int64_t mtiles = ceil_div(M, mr), ntiles = ceil_div(N, nr);
  // One strip per thread: every strip repacks the whole shared operand, so more strips cost real time.
  int64_t parts = flops < 2e6 ? 1 : threads;
  const bool split_rows = mtiles >= ntiles;
  parts = min64(parts, split_rows ? mtiles : ntiles);
  if (parts <= 1) {
    gemm_serial(c, N, A, B, M, N, K, accumulate, plan);
    return;
  }
  const int64_t unit = split_rows ? mr : nr;
  const int64_t tiles = split_rows ? mtiles : ntiles;
  auto task = [&](int64_t t) {
    const int64_t t0 = tiles * t / parts, t1 = tiles * (t + 1) / parts;
    const int64_t extent = split_rows ? M : N;
    const int64_t s0 = t0 * unit, s1 = min64(extent, t1 * unit);
    if (s1 <= s0) return;
    if (split_rows) {
      const MatView As{A.p + s0 * A.rs, A.rs, A.cs};
      gemm_serial(c + s0 * N, N, As, B, s1 - s0, N, K, accumulate, plan);
    } else {
      const View<TB> Bs{B.p + s0 * B.cs, B.rs, B.cs};
      gemm_serial(c + s0, N, A, Bs, M, s1 - s0, K, accumulate, plan);
    }
  };
  run_tasks(parts, task);
}

static void gemm(float* c, const float* a, const float* b, int64_t M, int64_t N, int64_t K, bool transA,
                 bool transB, bool accumulate) {
  const MatView A = transA ? MatView{a, 1, M} : MatView{a, K, 1};
  const MatView B = transB ? MatView{b, 1, K} : MatView{b, N, 1};
  if (M <= kSmallM && M > 0 && K > 0 && !matmul_bf16()) {  // (bf16 rounds its operands while packing them)
    gemm_small_m(c, A, B, M, N, K, accumulate);
    return;
  }
  const GemmPlan plan = gemm_plan();  // before any thread starts: the first bf16 call probes the paths here
  gemm_threads(c, A, B, M, N, K, accumulate, plan);
}

// ------------------------------------------------------------------------------------------------ bf16 weights
//
// A frozen bf16 weight (torch_dtype bfloat16) is B, read from its bits: the GEMM above with B packed from bf16
// (widened exactly, or paired straight into VDPBF16PS operands) and A rounded as in bf16 mode, on the bf16 path the
// probe chose, whatever matmul_bf16() says. The same blocks, packing order and micro-kernels as bf16 mode on the
// widened weight, so the same numbers without a float32 copy of the weight (half the memory, half the bytes read).

/** c (M,N) [+]= bf16(A) @ B, B a bf16 weight; A row-major (M,K); B (K,N) row-major, or stored (N,K) when transB */
static void gemm_bf16_weight(float* c, const float* a, const uint16_t* b, int64_t M, int64_t N, int64_t K,
                             bool transB, bool accumulate) {
  const MatView A{a, K, 1};
  const Bf16View B = transB ? Bf16View{b, 1, K} : Bf16View{b, N, 1};
  if (M <= kSmallM && M > 0 && K > 0) {  // decoding: the weight read in place, never copied
    gemm_small_m(c, A, B, M, N, K, accumulate);
    return;
  }
  const Blocks& blk = gemm_blocks();
  const GemmPlan plan{blk.kc, blk.mc, blk.nc, bf16_choice().mode};  // (the first bf16 product probes the paths here)
  gemm_threads(c, A, B, M, N, K, accumulate, plan);
}

// Column sums over rows (the norms' weight and bias gradients, a linear layer's bias gradient). Each block of
// kRowBlock rows adds its rows into a partial row of its own, in the pass that reads those rows anyway (the norms'
// dinp); row_block_partials_sum then adds the partials in block order. The blocks do not depend on the thread
// count, so neither do the sums. (A second pass with threads owning channel ranges read every row again, and its
// threads' ranges of the gradient could share a cache line, written back and forth once per row: rmsnorm backward
// ran slower on 2 threads than on 1.)
constexpr int64_t kRowBlock = 64;

/** the blocks' partial rows from the calling thread's scratch slot 2: (blocks, C) per gradient, `grads` of them */
static float* row_block_partials(int64_t N, int64_t C, int grads) {
  return scratch(2, grads * ceil_div(N, kRowBlock) * C);
}

/** row blocks per task: at least kPointwiseGrain elements */
static int64_t row_block_grain(int64_t C) { return max64(1, ceil_div(kPointwiseGrain, kRowBlock * max64(C, 1))); }

/** dst (C) += the sum of part's `blocks` rows (blocks, C), added in block order */
static void row_block_partials_sum(float* dst, const float* part, int64_t blocks, int64_t C) {
  parallel_for(C, max64(16, ceil_div(kPointwiseGrain, max64(blocks, 1))), [=](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; c++) {
      float acc = 0.0f;
      for (int64_t b = 0; b < blocks; b++) acc += part[b * C + c];
      dst[c] += acc;
    }
  });
}

/** out (N,OC) rows = bias (OC), on the threads (and into the caches) of the GEMM row strips that add to them next */
static void bias_rows(float* out, const float* bias, int64_t N, int64_t OC) {
  parallel_for(N, ceil_div(kPointwiseGrain, max64(OC, 1)), [=](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) std::memcpy(out + n * OC, bias, static_cast<size_t>(OC) * 4);
  });
}

static void matmul_forward_bf16(float* out, const float* inp, const uint16_t* weight, const float* bias, int64_t N,
                                int64_t C, int64_t OC) {
  if (bias) bias_rows(out, bias, N, OC);
  gemm_bf16_weight(out, inp, weight, N, OC, C, true, bias != nullptr);
}

static void matmul_backward_bf16(float* dinp, const float* dout, const uint16_t* weight, int64_t N, int64_t C,
                                 int64_t OC, bool accumulate) {
  gemm_bf16_weight(dinp, dout, weight, N, C, OC, false, accumulate);  // dinp [+]= bf16(dout) @ weight
}

/**
 * ids (N), table (V,C) float32 or bf16 bits (TB = uint16_t: widened) -> out (N,C) = the rows, written or accumulated;
 * a float32 row written is one memcpy
 */
template <class TB>
static void embedding_rows(float* out, const int32_t* ids, const TB* table, int64_t N, int64_t C, bool accumulate) {
  parallel_for(N, ceil_div(kPointwiseGrain, max64(C, 1)), [=](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) {
      const TB* src = table + int64_t(ids[n]) * C;
      float* dst = out + n * C;
      if (accumulate) {
#pragma omp simd
        for (int64_t c = 0; c < C; c++) dst[c] += b_value(src[c]);
      } else if constexpr (sizeof(TB) == 4) {
        std::memcpy(dst, src, static_cast<size_t>(C) * 4);
      } else {
#pragma omp simd
        for (int64_t c = 0; c < C; c++) dst[c] = b_value(src[c]);
      }
    }
  });
}

static void embedding_forward_bf16(float* out, const int32_t* ids, const uint16_t* table, int64_t N, int64_t C,
                                   bool accumulate) {
  embedding_rows(out, ids, table, N, C, accumulate);
}

static void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N,
                           int64_t C, int64_t OC) {
  if (bias) bias_rows(out, bias, N, OC);
  gemm(out, inp, weight, N, OC, C, false, true, bias != nullptr);
}

/** column sums of x (N,C) added to out (C), by row blocks */
static void add_column_sums(float* out, const float* x, int64_t N, int64_t C) {
  const int64_t blocks = ceil_div(N, kRowBlock);
  float* part = row_block_partials(N, C, 1);
  parallel_for(blocks, row_block_grain(C), [=](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; b++) {
      float* __restrict p = part + b * C;
      for (int64_t c = 0; c < C; c++) p[c] = 0.0f;
      for (int64_t n = b * kRowBlock; n < min64(N, (b + 1) * kRowBlock); n++) {
        const float* __restrict xr = x + n * C;
#pragma omp simd
        for (int64_t c = 0; c < C; c++) p[c] += xr[c];
      }
    }
  });
  row_block_partials_sum(out, part, blocks, C);
}

static void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                            const float* weight, int64_t N, int64_t C, int64_t OC, bool accumulate) {
  // written (!accumulate): the first K block stores instead of adding, so the caller zeroes nothing first
  if (dinp) gemm(dinp, dout, weight, N, C, OC, false, false, accumulate);  // dinp [+]= dout @ weight
  if (dweight) gemm(dweight, dout, inp, OC, C, N, true, false, true);   // dweight += dout^T @ inp
  if (dbias) add_column_sums(dbias, dout, N, OC);
}

// ------------------------------------------------------------------------------------------------ embeddings

static void embedding_forward(float* out, const int32_t* ids, const float* table, int64_t N, int64_t C,
                              bool accumulate) {
  embedding_rows(out, ids, table, N, C, accumulate);
}

/** scatter-add; repeated ids would race if threads split tokens, so threads own channel ranges instead */
static void embedding_backward(float* dtable, const float* dout, const int32_t* ids, int64_t N, int64_t C) {
  parallel_for(C, max64(16, ceil_div(kPointwiseGrain, max64(N, 1))), [=](int64_t c0, int64_t c1) {
    for (int64_t n = 0; n < N; n++) {
      float* dst = dtable + int64_t(ids[n]) * C;
      const float* src = dout + n * C;
#pragma omp simd
      for (int64_t c = c0; c < c1; c++) dst[c] += src[c];
    }
  });
}

// ------------------------------------------------------------------------------------------------ norms

static void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                              const float* bias, int64_t N, int64_t C, float eps) {
  parallel_for(N, ceil_div(kPointwiseGrain, max64(C, 1)), [=](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) {
      const float* x = inp + n * C;
      float* y = out + n * C;
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int64_t c = 0; c < C; c++) sum += x[c];
      const float m = sum / float(C);
      float var = 0.0f;
#pragma omp simd reduction(+ : var)
      for (int64_t c = 0; c < C; c++) var += (x[c] - m) * (x[c] - m);
      const float s = 1.0f / std::sqrt(var / float(C) + eps);
#pragma omp simd
      for (int64_t c = 0; c < C; c++) y[c] = (x[c] - m) * s * weight[c] + bias[c];
      mean[n] = m;
      rstd[n] = s;
    }
  });
}

/**
 * rows [n0, n1) of layernorm_backward: dinp accumulated; when kParams, their dweight and dbias terms written
 * (summed over the rows) into dw and db (C each)
 */
template <bool kParams>
static void layernorm_backward_rows(float* __restrict dinp, float* __restrict dw, float* __restrict db,
                                    const float* __restrict dout, const float* __restrict inp,
                                    const float* __restrict weight, const float* __restrict mean,
                                    const float* __restrict rstd, int64_t n0, int64_t n1, int64_t C) {
  if (kParams) {
    for (int64_t c = 0; c < C; c++) dw[c] = db[c] = 0.0f;
  }
  for (int64_t n = n0; n < n1; n++) {
    const float* x = inp + n * C;
    const float* dy = dout + n * C;
    float* dx = dinp + n * C;
    const float m = mean[n], s = rstd[n];
    float dnorm_mean = 0.0f, dnorm_xhat_mean = 0.0f;
#pragma omp simd reduction(+ : dnorm_mean, dnorm_xhat_mean)
    for (int64_t c = 0; c < C; c++) {
      const float dnorm = dy[c] * weight[c];
      dnorm_mean += dnorm;
      dnorm_xhat_mean += dnorm * (x[c] - m) * s;
    }
    dnorm_mean /= float(C);
    dnorm_xhat_mean /= float(C);
#pragma omp simd
    for (int64_t c = 0; c < C; c++) {
      const float xhat = (x[c] - m) * s;
      dx[c] += s * (dy[c] * weight[c] - dnorm_mean - xhat * dnorm_xhat_mean);
      if (kParams) {
        db[c] += dy[c];
        dw[c] += dy[c] * xhat;
      }
    }
  }
}

static void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                               const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C) {
  const int64_t blocks = ceil_div(N, kRowBlock);
  const bool params = dweight || dbias;
  float* part = params ? row_block_partials(N, C, 2) : nullptr;  // dweight's blocks, then dbias's
  parallel_for(blocks, row_block_grain(C), [=](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; b++) {
      const int64_t n0 = b * kRowBlock, n1 = min64(N, n0 + kRowBlock);
      if (params) {
        layernorm_backward_rows<true>(dinp, part + b * C, part + (blocks + b) * C, dout, inp, weight, mean, rstd, n0,
                                      n1, C);
      } else {
        layernorm_backward_rows<false>(dinp, nullptr, nullptr, dout, inp, weight, mean, rstd, n0, n1, C);
      }
    }
  });
  if (dweight) row_block_partials_sum(dweight, part, blocks, C);
  if (dbias) row_block_partials_sum(dbias, part + blocks * C, blocks, C);
}

static void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t N, int64_t C,
                            float eps) {
  parallel_for(N, ceil_div(kPointwiseGrain, max64(C, 1)), [=](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) {
      const float* x = inp + n * C;
      float* y = out + n * C;
      float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
      for (int64_t c = 0; c < C; c++) ss += x[c] * x[c];
      const float s = 1.0f / std::sqrt(ss / float(C) + eps);
#pragma omp simd
      for (int64_t c = 0; c < C; c++) y[c] = weight[c] * (x[c] * s);
      rstd[n] = s;
    }
  });
}

/**
 * rows [n0, n1) of rmsnorm_backward: dinp accumulated; when kParams, their dweight terms written (summed over the
 * rows) into dw (C). A plain function so the compiler sees the pointers, not a closure.
 */
template <bool kParams>
static void rmsnorm_backward_rows(float* __restrict dinp, float* __restrict dw, const float* __restrict dout,
                                  const float* __restrict inp, const float* __restrict weight,
                                  const float* __restrict rstd, int64_t n0, int64_t n1, int64_t C) {
  if (kParams) {
    for (int64_t c = 0; c < C; c++) dw[c] = 0.0f;
  }
  for (int64_t n = n0; n < n1; n++) {
    const float* x = inp + n * C;
    const float* dy = dout + n * C;
    float* dx = dinp + n * C;
    const float s = rstd[n];
    // y = w x s with s = (mean(x^2) + eps)^-1/2  =>  dx = s (w dy) - x s^3 mean(w dy x)
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int64_t c = 0; c < C; c++) dot += dy[c] * weight[c] * x[c];
    const float k = (dot / float(C)) * s * s * s;
#pragma omp simd
    for (int64_t c = 0; c < C; c++) {
      dx[c] += s * dy[c] * weight[c] - x[c] * k;
      if (kParams) dw[c] += dy[c] * x[c] * s;
    }
  }
}

static void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                             const float* rstd, int64_t N, int64_t C) {
  const int64_t blocks = ceil_div(N, kRowBlock);
  float* part = dweight ? row_block_partials(N, C, 1) : nullptr;
  parallel_for(blocks, row_block_grain(C), [=](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; b++) {
      const int64_t n0 = b * kRowBlock, n1 = min64(N, n0 + kRowBlock);
      if (part) rmsnorm_backward_rows<true>(dinp, part + b * C, dout, inp, weight, rstd, n0, n1, C);
      else rmsnorm_backward_rows<false>(dinp, nullptr, dout, inp, weight, rstd, n0, n1, C);
    }
  });
  if (dweight) row_block_partials_sum(dweight, part, blocks, C);
}

// ------------------------------------------------------------------------------------------------ RoPE

static void rope_forward(float* out, const float* inp, const float* cosb, const float* sinb, int64_t B, int64_t T,
                         int64_t H, int64_t HD, int64_t pos0) {
  const int64_t half = HD / 2;
  parallel_for(B * T, ceil_div(kPointwiseGrain, max64(H * HD, 1)), [=](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const int64_t t = r % T;
      const float* cs = cosb + (pos0 + t) * half;
      const float* sn = sinb + (pos0 + t) * half;
      for (int64_t h = 0; h < H; h++) {
        const float* x = inp + (r * H + h) * HD;
        float* y = out + (r * H + h) * HD;  // may be x: each pair is read before it is written
#pragma omp simd
        for (int64_t i = 0; i < half; i++) {
          const float x1 = x[i], x2 = x[i + half];
          y[i] = x1 * cs[i] - x2 * sn[i];
          y[i + half] = x2 * cs[i] + x1 * sn[i];
        }
      }
    }
  });
}

static void rope_backward(float* dinp, const float* dout, const float* cosb, const float* sinb, int64_t B,
                          int64_t T, int64_t H, int64_t HD, int64_t pos0, bool accumulate) {
  const int64_t half = HD / 2;
  parallel_for(B * T, ceil_div(kPointwiseGrain, max64(H * HD, 1)), [=](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const int64_t t = r % T;
      const float* cs = cosb + (pos0 + t) * half;
      const float* sn = sinb + (pos0 + t) * half;
      for (int64_t h = 0; h < H; h++) {
        const float* dy = dout + (r * H + h) * HD;
        float* dx = dinp + (r * H + h) * HD;
        if (accumulate) {
#pragma omp simd
          for (int64_t i = 0; i < half; i++) {
            const float d1 = dy[i], d2 = dy[i + half];
            dx[i] += d1 * cs[i] + d2 * sn[i];
            dx[i + half] += d2 * cs[i] - d1 * sn[i];
          }
        } else {
#pragma omp simd
          for (int64_t i = 0; i < half; i++) {
            const float d1 = dy[i], d2 = dy[i + half];
            dx[i] = d1 * cs[i] + d2 * sn[i];
            dx[i + half] = d2 * cs[i] - d1 * sn[i];
          }
        }
      }
    }
  });
}

// ------------------------------------------------------------------------------------------------ attention
//
// Flash-style: one task owns a (batch, head, query tile) in forward and a (batch, kv head) in backward, walks
// the causal key range one BK-wide tile at a time, and keeps only that tile of scores. Forward uses the online
// softmax (running max m and sum l, rescaling the output accumulator when the max grows) and saves
// lse = m + log l; backward recomputes p = exp(s - lse) and uses D = rowsum(dout * out). The tile products
// (scores, P V, and the four backward products) all go through tile_gemm, a register-blocked small GEMM that
// reads q/k/v rows in place with their strides.

constexpr int64_t ATT_BQ = 32;  // query rows per tile
constexpr int64_t ATT_BK = 64;  // keys per score tile
constexpr int ATT_NV = VL >= 16 ? 4 : 2;  // vectors per register row in tile_gemm (fits the register file)
constexpr int64_t ATT_W = ATT_NV * VL;  // widest register strip

/**
 * c (RR, NV*VL) [+]= a (RR, K) @ b (K, NV*VL): RR x NV accumulators held in registers. a's element (r, k) is
 * a[r * lda + k * aks], so a transposed operand (P^T, dS^T in attention backward) is read without a copy.
 */
template <int RR, int NV>
static inline void tile_kernel(float* c, int64_t ldc, const float* a, int64_t lda, int64_t aks, const float* b,
                               int64_t ldb, int64_t K, bool accumulate) {
  vf acc[RR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < RR; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) acc[r][v] = vzero();
  for (int64_t k = 0; k < K; k++) {
    vf bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) bv[v] = vload(b + k * ldb + v * VL);
#pragma GCC unroll 16
    for (int r = 0; r < RR; r++) {
      const vf av = vset(a[r * lda + k * aks]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[r][v] = vfma(av, bv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < RR; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
      float* cp = c + r * ldc + v * VL;
      vstore(cp, accumulate ? vadd(acc[r][v], vload(cp)) : acc[r][v]);
    }
}

/**
 * one column strip NV*VL wide of tile_gemm: on AVX-512 narrow strips (head size 32: 2 vectors) take 8 rows at a
 * time so 16 accumulators hide the FMA latency and each B load feeds 8 FMAs; 4 rows x 2 vectors left attention
 * backward at 80 GFLOP/s (now ~100). 6 x 4 / 12 x 2 blocks measured no better than 4 x 4 / 8 x 2.
 */
template <int NV>
static inline void tile_strip(float* c, int64_t ldc, const float* a, int64_t lda, int64_t aks, const float* b,
                              int64_t ldb, int64_t R, int64_t K, bool accumulate) {
  constexpr int kRows = VL >= 16 && NV <= 2 ? 8 : 4;  // AVX2 has 16 registers: 8 x 2 would spill
  int64_t r = 0;
  for (; r + kRows <= R; r += kRows)
    tile_kernel<kRows, NV>(c + r * ldc, ldc, a + r * lda, lda, aks, b, ldb, K, accumulate);
  for (; r + 4 <= R; r += 4) tile_kernel<4, NV>(c + r * ldc, ldc, a + r * lda, lda, aks, b, ldb, K, accumulate);
  for (; r < R; r++) tile_kernel<1, NV>(c + r * ldc, ldc, a + r * lda, lda, aks, b, ldb, K, accumulate);
}

/** columns [j, W) of tile_gemm, left over when W is not a multiple of the register width */
__attribute__((noinline)) static void tile_gemm_tail(float* c, int64_t ldc, const float* a, int64_t lda,
                                                     int64_t aks, const float* b, int64_t ldb, int64_t R, int64_t K, int64_t j,
                                                     int64_t W, bool accumulate) {
  for (int64_t r = 0; r < R; r++) {
    float* cr = c + r * ldc;
    if (!accumulate)
      for (int64_t jj = j; jj < W; jj++) cr[jj] = 0.0f;
    for (int64_t k = 0; k < K; k++) {
      const float x = a[r * lda + k * aks];
      const float* br = b + k * ldb;
#pragma omp simd
      for (int64_t jj = j; jj < W; jj++) cr[jj] += x * br[jj];
    }
  }
}

/**
 * c (R,W) [+]= a (R,K) @ b (K,W); c and b row-major with their own row strides, a's element (r, k) at
 * a[r * lda + k * aks]; small R, W, K (one attention tile)
 */
static void tile_gemm(float* c, int64_t ldc, const float* a, int64_t lda, int64_t aks, const float* b, int64_t ldb,
                      int64_t R, int64_t K, int64_t W, bool accumulate) {
  int64_t j = 0;
  for (; j + ATT_W <= W; j += ATT_W) tile_strip<ATT_NV>(c + j, ldc, a, lda, aks, b + j, ldb, R, K, accumulate);
  if (ATT_NV > 2 && j + 2 * VL <= W) {  // head sizes like 32 on AVX-512
    tile_strip<2>(c + j, ldc, a, lda, aks, b + j, ldb, R, K, accumulate);
    j += 2 * VL;
  }
  if (j + VL <= W) {
    tile_strip<1>(c + j, ldc, a, lda, aks, b + j, ldb, R, K, accumulate);
    j += VL;
  }
  if (j < W) tile_gemm_tail(c, ldc, a, lda, aks, b, ldb, R, K, j, W, accumulate);
}

/**
 * Rows of one head read down the tokens (a few cache lines each, one token's row of every head apart) defeat the
 * hardware prefetcher: the loads that gather a task's q rows, or dout and out rows for D, stalled on each row in
 * turn (9% of the forward, 6% of the backward at head size 32). Touching the row kPrefetchRows ahead overlaps them.
 */
constexpr int64_t kPrefetchRows = 8;
static inline void prefetch_row(const float* p, int64_t n) {
  for (int64_t x = 0; x < n; x += 64 / int64_t(sizeof(float))) __builtin_prefetch(p + x);
}

/** dst (cols, rows) = src (rows, cols) with row strides ld_src / ld_dst */
static void transpose(float* dst, int64_t ld_dst, const float* src, int64_t ld_src, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) dst[c * ld_dst + r] = src[r * ld_src + c];
}

/** dst (HD,BK) = key/value rows [j0, j0+bk) transposed, zero padded to BK columns */
static void load_transposed_tile(float* dst, const float* src, int64_t stride, int64_t j0, int64_t bk, int64_t HD) {
  transpose(dst, ATT_BK, src + j0 * stride, stride, bk, HD);
  for (int64_t d = 0; d < HD; d++)
    for (int64_t jj = bk; jj < ATT_BK; jj++) dst[d * ATT_BK + jj] = 0.0f;
}

/**
 * The keys a tile's query rows may not see besides the causal limit: with `hidden` (B,2), keys [lo, hi) of row b
 * are invisible to queries at t >= hi (two continuations of one shared prefix in one row).
 */
struct HiddenKeys {
  int64_t lo = 0, hi = 0;
  HiddenKeys(const int32_t* hidden, int64_t b) {
    if (hidden) lo = hidden[2 * b], hi = hidden[2 * b + 1];
  }
  /** every query of [i0, ...) is past hi and the key tile [j0, j0+bk) lies inside [lo, hi): nothing to compute */
  bool tile_hidden(int64_t i0, int64_t j0, int64_t bk) const { return i0 >= hi && j0 >= lo && j0 + bk <= hi; }
  /**
   * the first key tile start >= j0 (a multiple of ATT_BK below kend) that queries [i0, ...) can see something
   * of, or kend. Loops advance with this instead of `continue` past hidden tiles: the continue made GCC compile
   * the forward's tile loop 2x slower even with no hidden keys at all.
   */
  int64_t next_tile(int64_t i0, int64_t j0, int64_t kend) const {
    while (j0 < kend && tile_hidden(i0, j0, min64(ATT_BK, kend - j0))) j0 += ATT_BK;
    return j0;
  }
  /** the tile columns [a, e) (keys j0 + a .. j0 + e) query qi may not see; empty (a >= e) when none */
  struct Columns {
    int64_t a, e;
    bool any() const { return a < e; }
  };
  Columns columns(int64_t qi, int64_t j0, int64_t bk) const {
    if (qi < hi) return {0, 0};
    return {max64(lo - j0, 0), min64(hi - j0, bk)};
  }
};

/**
 * A hidden key's score while the softmax loops run: far below any real score, so it adds nothing to the max or
 * (after exp) to the sum, and finite, so a row that has seen only hidden keys so far gets no inf - inf = NaN. The
 * vectorised loops stay exactly the causal ones: a second range test on the key index inside them
 * (`jj < visible && (jj < a0 || jj >= a1)`) came out of GCC 12's AVX-512 build giving wrong, run-to-run varying
 * rows. The hidden columns of P and dS are zeroed afterwards.
 */
constexpr float kHiddenScore = -1e30f;

static inline void fill_columns(float* row, int64_t a, int64_t e, float v) {
  for (int64_t jj = a; jj < e; jj++) row[jj] = v;
}

/**
 * The flash forward for queries that are the last T of each row's L = pos0 + T keys: pos0 = 0 is training's
 * self-attention, pos0 > 0 a generation step over a key/value cache. lse may be null (nothing to save).
 */
static void attention_forward_at(float* out, float* lse, const float* q, const float* k, const float* v, int64_t B,
                                 int64_t T, int64_t pos0, int64_t NH, int64_t NKV, int64_t HD, int64_t qStride,
                                 int64_t kvStride, const int32_t* hidden) {
  const int64_t L = pos0 + T;
  const float scale = 1.0f / std::sqrt(float(HD));
  const int64_t group = NH / NKV;
  const int64_t qtiles = ceil_div(T, ATT_BQ);
  // One task per (batch, kv head, query tile) covering the `group` query heads that share the kv head, so each
  // key tile is read once for all of them.
  //
  // Scores are computed transposed, S^T (keys, group x BQ queries) = K tile (read in place) @ Qs^T, Qs^T made once
  // per task: no key tile is transposed (a scalar copy per key tile), and the softmax runs down the key rows with
  // the queries in the vector lanes, so the running max and sum are per-lane updates instead of two horizontal
  // reductions per query row (at head size 32 the softmax cost as much as both tile products). P V reads P^T in
  // place.
  const int64_t ldq = group * ATT_BQ;  // row stride of Qs^T and S^T
  auto task = [&](int64_t t) {
    // the last query tiles see the most keys: hand them out first so the tail of the schedule is short
    const int64_t b = t / (NKV * qtiles), kvh = (t / qtiles) % NKV, i0 = (qtiles - 1 - t % qtiles) * ATT_BQ;
    const int64_t bq = min64(ATT_BQ, T - i0);
    const HiddenKeys hk(hidden, b);
    float* qst = scratch(2, HD * ldq);           // scaled queries transposed, (HD, group x BQ); lanes >= bq zero
    float* o = scratch(3, group * ATT_BQ * HD);  // output accumulators, (group, BQ, HD)
    float* st = scratch(4, ATT_BK * ldq);        // S^T, then P^T, (BK, group x BQ)
    float* m = scratch(5, 2 * group * ATT_BQ);   // running max, (group, BQ)
    float* l = m + group * ATT_BQ;               // running sum, (group, BQ)
    for (int64_t g = 0; g < group; g++) {
      const int64_t h = kvh * group + g;
      for (int64_t i = 0; i < ATT_BQ; i++) {
        const float* qr = q + (b * T + i0 + i) * qStride + h * HD;
        if (i + kPrefetchRows < bq) prefetch_row(qr + kPrefetchRows * qStride, HD);
        for (int64_t d = 0; d < HD; d++) qst[d * ldq + g * ATT_BQ + i] = i < bq ? qr[d] * scale : 0.0f;
        m[g * ATT_BQ + i] = -INFINITY;
        l[g * ATT_BQ + i] = 0.0f;
      }
    }
    for (int64_t x = 0; x < group * ATT_BQ * HD; x++) o[x] = 0.0f;
    const float* kbase = k + b * L * kvStride + kvh * HD;
    const float* vbase = v + b * L * kvStride + kvh * HD;
    const int64_t kend = pos0 + i0 + bq;  // keys [0, kend) are visible to some row of this tile
    for (int64_t j0 = hk.next_tile(pos0 + i0, 0, kend); j0 < kend; j0 = hk.next_tile(pos0 + i0, j0 + ATT_BK, kend)) {
      const int64_t bk = min64(ATT_BK, kend - j0);
      tile_gemm(st, ldq, kbase + j0 * kvStride, kvStride, 1, qst, ldq, bk, HD, ldq, false);
      // Lanes i >= bq hold the scores of zero queries: finite, never written out. Key row jj is visible to the
      // lanes i >= j0 + jj - (pos0 + i0) (causal).
      const int64_t first0 = j0 - (pos0 + i0);
      for (int64_t g = 0; g < group; g++) {
        float* sg = st + g * ATT_BQ;
        float* og = o + g * ATT_BQ * HD;
        float* mg = m + g * ATT_BQ;
        float* lg = l + g * ATT_BQ;
        bool any_hidden = false;
        for (int64_t i = 0; i < bq; i++) {
          const HiddenKeys::Columns hc = hk.columns(pos0 + i0 + i, j0, bk);
          if (!hc.any()) continue;
          any_hidden = true;
          for (int64_t jj = hc.a; jj < hc.e; jj++) sg[jj * ldq + i] = kHiddenScore;
        }
        alignas(64) float mx[ATT_BQ], corr[ATT_BQ], sum[ATT_BQ];
        for (int i = 0; i < int(ATT_BQ); i++) mx[i] = mg[i], sum[i] = 0.0f;
        for (int64_t jj = 0; jj < bk; jj++) {
          const float* row = sg + jj * ldq;
          const int first = int(first0 + jj);
          if (first <= 0) {
#pragma omp simd
            for (int i = 0; i < int(ATT_BQ); i++) mx[i] = row[i] > mx[i] ? row[i] : mx[i];
          } else {
#pragma omp simd
            for (int i = 0; i < int(ATT_BQ); i++) mx[i] = i >= first && row[i] > mx[i] ? row[i] : mx[i];
          }
        }
        // a max that did not grow leaves corr exactly 1 (and that output row unscaled)
#pragma omp simd
        for (int i = 0; i < int(ATT_BQ); i++) {
          const float e = exp_approx(mg[i] - mx[i]);
          corr[i] = mx[i] == mg[i] ? 1.0f : (mg[i] == -INFINITY ? 0.0f : e);
        }
        for (int64_t jj = 0; jj < bk; jj++) {
          float* row = sg + jj * ldq;
          const int first = int(first0 + jj);
          if (first <= 0) {
#pragma omp simd
            for (int i = 0; i < int(ATT_BQ); i++) {
              const float p = exp_approx(row[i] - mx[i]);
              row[i] = p;
              sum[i] += p;
            }
          } else {
#pragma omp simd
            for (int i = 0; i < int(ATT_BQ); i++) {
              const float p = i >= first ? exp_approx(row[i] - mx[i]) : 0.0f;
              row[i] = p;
              sum[i] += p;
            }
          }
        }
        if (any_hidden) {  // their exp (~1e-38) is below the sum's rounding
          for (int64_t i = 0; i < bq; i++) {
            const HiddenKeys::Columns hc = hk.columns(pos0 + i0 + i, j0, bk);
            for (int64_t jj = hc.a; jj < hc.e; jj++) sg[jj * ldq + i] = 0.0f;
          }
        }
        for (int64_t i = 0; i < bq; i++) {
          lg[i] = lg[i] * corr[i] + sum[i];
          mg[i] = mx[i];
          if (corr[i] != 1.0f) {
            float* orow = og + i * HD;
            const float c = corr[i];
#pragma omp simd
            for (int64_t d = 0; d < HD; d++) orow[d] *= c;
          }
        }
        tile_gemm(og, HD, sg, 1, ldq, vbase + j0 * kvStride, kvStride, bq, bk, HD, true);  // O += P V
      }
    }
    for (int64_t g = 0; g < group; g++) {
      const int64_t h = kvh * group + g;
      for (int64_t i = 0; i < bq; i++) {
        const float inv = 1.0f / l[g * ATT_BQ + i];
        const float* orow = o + (g * ATT_BQ + i) * HD;
        float* dst = out + ((b * T + i0 + i) * NH + h) * HD;
        for (int64_t d = 0; d < HD; d++) dst[d] = orow[d] * inv;
        if (lse) lse[(b * NH + h) * T + i0 + i] = m[g * ATT_BQ + i] + std::log(l[g * ATT_BQ + i]);
      }
    }
  };
  run_tasks(B * NKV * qtiles, task);
}

static void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, int64_t B,
                              int64_t T, int64_t NH, int64_t NKV, int64_t HD, int64_t qStride, int64_t kvStride,
                              const int32_t* hidden) {
  attention_forward_at(out, lse, q, k, v, B, T, 0, NH, NKV, HD, qStride, kvStride, hidden);
}

static void attention_decode(float* out, const float* q, const float* k, const float* v, int64_t T, int64_t pos0,
                             int64_t NH, int64_t NKV, int64_t HD, int64_t qStride, int64_t kvStride) {
  attention_forward_at(out, nullptr, q, k, v, 1, T, pos0, NH, NKV, HD, qStride, kvStride, nullptr);
}

/** D (T) = rowsum(dout * out) of one (batch, head): the softmax backward's row term */
static void attention_row_terms(float* D, const float* dout, const float* out, int64_t T, int64_t stride, int64_t HD) {
  for (int64_t i = 0; i < T; i++) {
    const float* dor = dout + i * stride;
    const float* orow = out + i * stride;
    if (i + kPrefetchRows < T) {
      prefetch_row(dor + kPrefetchRows * stride, HD);
      prefetch_row(orow + kPrefetchRows * stride, HD);
    }
    float d = 0.0f;
#pragma omp simd reduction(+ : d)
    for (int64_t x = 0; x < HD; x++) d += dor[x] * orow[x];
    D[i] = d;
  }
}

/**
 * One (query tile, key tile) of attention backward up to its products: s = q k^T and dp = dout v^T computed here
 * (kt, vt: the key tile's K and V transposed, (HD, BK)), then turned in place into P (for dv) and dS (for dq and dk).
 * lse and D are the query rows' own (from i0). Both forms of the backward call this, so they compute the same numbers.
 * Inlined: called, its tile products lost the constant strides they have inline (the backward ran 20% slower at T 2048).
 */
__attribute__((always_inline)) static inline void attention_tile_grads(float* s, float* dp, const float* qr, int64_t qStride, const float* dor, int64_t doStride,
                                 const float* kt, const float* vt, const float* lse, const float* D, int64_t i0,
                                 int64_t bq, int64_t j0, int64_t bk, int64_t HD, float scale, const HiddenKeys& hk) {
  tile_gemm(s, ATT_BK, qr, qStride, 1, kt, ATT_BK, bq, HD, ATT_BK, false);    // q k^T
  tile_gemm(dp, ATT_BK, dor, doStride, 1, vt, ATT_BK, bq, HD, ATT_BK, false);  // dout v^T
  for (int64_t i = 0; i < bq; i++) {
    const int64_t visible = max64(0, min64(bk, i0 + i - j0 + 1));
    const float l = lse[i];
    const float Di = D[i];
    float* srow = s + i * ATT_BK;
    float* dprow = dp + i * ATT_BK;
    const HiddenKeys::Columns hc = hk.columns(i0 + i, j0, bk);
    if (hc.any()) fill_columns(srow, hc.a, hc.e, kHiddenScore);
    if (visible == ATT_BK) {  // unmasked, as in the forward
#pragma omp simd
      for (int jj = 0; jj < int(ATT_BK); jj++) {
        const float p = exp_approx(srow[jj] * scale - l);
        srow[jj] = p;
        dprow[jj] = p * (dprow[jj] - Di) * scale;
      }
    } else {
#pragma omp simd
      for (int64_t jj = 0; jj < ATT_BK; jj++) {
        const float p = jj < visible ? exp_approx(srow[jj] * scale - l) : 0.0f;
        srow[jj] = p;                                // P, for dv
        dprow[jj] = p * (dprow[jj] - Di) * scale;    // dS, for dq and dk
      }
    }
    if (hc.any()) {
      fill_columns(srow, hc.a, hc.e, 0.0f);
      fill_columns(dprow, hc.a, hc.e, 0.0f);
    }
  }
}

/**
 * Two forms with the same numbers (the same tile products, added in the same order), so the thread count never
 * changes a gradient:
 *   fused, one task per (batch, kv head): it owns dk/dv of that kv head and dq of the query heads that read it, so no
 *     two threads add to one element. Enough tasks when batch x kv heads is near the thread count or above.
 *   split, for fewer (a pair or two of a model with 2 kv heads on many cores: the fused form kept all but B x NKV
 *     cores idle): one pass of tasks per (batch, kv head, key tile) for dk/dv, one per (batch, head, query tile) for dq,
 *     the second recomputing its tiles' P and dS (1.4x the products, over T / 64 times as many tasks). On 2 cores
 *     with one kv head (1 x 2048 tokens, 14 heads of 64) it measured 110 against 133 ms; more cores were not measured.
 * D = rowsum(dout * out) first, per (batch, head).
 */
static void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                               const float* v, const float* out, const float* lse, int64_t B, int64_t T,
                               int64_t NH, int64_t NKV, int64_t HD, int64_t qStride, int64_t kvStride,
                               const int32_t* hidden) {
  const float scale = 1.0f / std::sqrt(float(HD));
  const int64_t group = NH / NKV;
  const int64_t doStride = NH * HD;
  const int64_t ktiles = ceil_div(T, ATT_BK);
  // split when the fused form would leave more threads idle than the split form's extra products cost (1.4x)
  const bool split = 10 * B * NKV < 7 * pool_threads() && ktiles > 1;
  // the calling thread's slot 6 (tasks use 0-3, and the calling thread runs tasks too)
  float* Dall = scratch(6, B * NH * T);
  auto row_terms = [&](int64_t t) {  // t = b * NH + h
    const int64_t b = t / NH, h = t % NH;
    attention_row_terms(Dall + t * T, dout + b * T * doStride + h * HD, out + b * T * doStride + h * HD, T, doStride, HD);
  };
  run_tasks(B * NH, row_terms);
  // dk, dv of key tile j0 of (b, kvh); with_dq: also dq of every query tile that sees it (the fused form)
  auto key_tile = [&](int64_t b, int64_t kvh, int64_t j0, bool with_dq) {
    const HiddenKeys hk(hidden, b);
    float* kt = scratch(0, 2 * HD * ATT_BK);  // K and V tiles transposed, (HD,BK) each
    float* vt = kt + HD * ATT_BK;
    float* dkv = scratch(1, 2 * ATT_BK * HD);  // dk and dv of the key tile, (BK,HD) each
    float* dkt = dkv;
    float* dvt = dkv + ATT_BK * HD;
    float* s = scratch(2, 2 * ATT_BQ * ATT_BK);  // P (BQ,BK), then dS (BQ,BK)
    float* dp = s + ATT_BQ * ATT_BK;
    const float* kbase = k + b * T * kvStride + kvh * HD;
    const float* vbase = v + b * T * kvStride + kvh * HD;
    const int64_t bk = min64(ATT_BK, T - j0);
    load_transposed_tile(kt, kbase, kvStride, j0, bk, HD);
    load_transposed_tile(vt, vbase, kvStride, j0, bk, HD);
    for (int64_t x = 0; x < 2 * ATT_BK * HD; x++) dkv[x] = 0.0f;
    for (int64_t g = 0; g < group; g++) {
      const int64_t h = kvh * group + g;
      for (int64_t i0 = j0; i0 < T; i0 += ATT_BQ) {  // query rows that can see this key tile
        const int64_t bq = min64(ATT_BQ, T - i0);
        if (hk.tile_hidden(i0, j0, bk)) continue;
        const float* qr = q + (b * T + i0) * qStride + h * HD;
        const float* dor = dout + (b * T + i0) * doStride + h * HD;
        attention_tile_grads(s, dp, qr, qStride, dor, doStride, kt, vt, lse + (b * NH + h) * T + i0,
                             Dall + (b * NH + h) * T + i0, i0, bq, j0, bk, HD, scale, hk);
        if (with_dq)
          tile_gemm(dq + (b * T + i0) * qStride + h * HD, qStride, dp, ATT_BK, 1, kbase + j0 * kvStride, kvStride, bq, bk,
                    HD, true);  // dq += dS k
        tile_gemm(dkt, HD, dp, 1, ATT_BK, qr, qStride, bk, bq, HD, true);   // dk += dS^T q
        tile_gemm(dvt, HD, s, 1, ATT_BK, dor, doStride, bk, bq, HD, true);  // dv += P^T dout
      }
    }
    for (int64_t jj = 0; jj < bk; jj++) {
      float* dkr = dk + (b * T + j0 + jj) * kvStride + kvh * HD;
      float* dvr = dv + (b * T + j0 + jj) * kvStride + kvh * HD;
#pragma omp simd
      for (int64_t d = 0; d < HD; d++) {
        dkr[d] += dkt[jj * HD + d];
        dvr[d] += dvt[jj * HD + d];
      }
    }
  };
  if (!split) {
    auto fused = [&](int64_t t) {
      for (int64_t j0 = 0; j0 < T; j0 += ATT_BK) key_tile(t / NKV, t % NKV, j0, true);
    };
    run_tasks(B * NKV, fused);
    return;
  }
  auto dkv_task = [&](int64_t t) {  // t = (b * NKV + kvh) * ktiles + key tile
    key_tile(t / ktiles / NKV, (t / ktiles) % NKV, (t % ktiles) * ATT_BK, false);
  };
  run_tasks(B * NKV * ktiles, dkv_task);
  const int64_t qtiles = ceil_div(T, ATT_BQ);
  // dq of query tile i0 of (b, h): dq += dS k over the key tiles it sees, in the fused form's order (ascending j0)
  auto dq_task = [&](int64_t t) {  // t = (b * NH + h) * qtiles + query tile
    const int64_t b = t / qtiles / NH, h = (t / qtiles) % NH, i0 = (t % qtiles) * ATT_BQ, kvh = h / group;
    const int64_t bq = min64(ATT_BQ, T - i0);
    const HiddenKeys hk(hidden, b);
    float* kt = scratch(0, 2 * HD * ATT_BK);
    float* vt = kt + HD * ATT_BK;
    float* s = scratch(2, 2 * ATT_BQ * ATT_BK);
    float* dp = s + ATT_BQ * ATT_BK;
    const float* kbase = k + b * T * kvStride + kvh * HD;
    const float* vbase = v + b * T * kvStride + kvh * HD;
    const float* qr = q + (b * T + i0) * qStride + h * HD;
    const float* dor = dout + (b * T + i0) * doStride + h * HD;
    for (int64_t j0 = 0; j0 < i0 + bq; j0 += ATT_BK) {  // key tiles whose first key some query of the tile sees
      const int64_t bk = min64(ATT_BK, T - j0);
      // the fused form visits (j0, i0) only for i0 >= j0: its query tiles start at the key tile
      if (i0 < j0 || hk.tile_hidden(i0, j0, bk)) continue;
      load_transposed_tile(kt, kbase, kvStride, j0, bk, HD);
      load_transposed_tile(vt, vbase, kvStride, j0, bk, HD);
      attention_tile_grads(s, dp, qr, qStride, dor, doStride, kt, vt, lse + (b * NH + h) * T + i0,
                           Dall + (b * NH + h) * T + i0, i0, bq, j0, bk, HD, scale, hk);
      tile_gemm(dq + (b * T + i0) * qStride + h * HD, qStride, dp, ATT_BK, 1, kbase + j0 * kvStride, kvStride, bq, bk, HD,
                true);  // dq += dS k
    }
  };
  run_tasks(B * NH * qtiles, dq_task);
}

// ------------------------------------------------------------------------------------------------ pointwise

static void swiglu_forward(float* out, const float* gate, const float* up, int64_t N) {
  parallel_for(N, kPointwiseGrain, [=](int64_t i0, int64_t i1) {
#pragma omp simd
    for (int64_t i = i0; i < i1; i++) {
      const float g = gate[i];
      out[i] = g * sigmoid_approx(g) * up[i];
    }
  });
}

static void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                            int64_t N, bool accumulate) {
  parallel_for(N, kPointwiseGrain, [=](int64_t i0, int64_t i1) {
    if (accumulate) {
#pragma omp simd
      for (int64_t i = i0; i < i1; i++) {
        const float g = gate[i];
        const float sg = sigmoid_approx(g);
        dup[i] += dout[i] * g * sg;
        dgate[i] += dout[i] * up[i] * sg * (1.0f + g * (1.0f - sg));
      }
    } else {
#pragma omp simd
      for (int64_t i = i0; i < i1; i++) {
        const float g = gate[i];
        const float sg = sigmoid_approx(g);
        dup[i] = dout[i] * g * sg;
        dgate[i] = dout[i] * up[i] * sg * (1.0f + g * (1.0f - sg));
      }
    }
  });
}

constexpr float GELU_K = 0.7978845608028654f;  // sqrt(2/pi)

// 0.5 x (1 + tanh u) = x sigmoid(2u): the same function, without the cancellation in 1 + tanh u that costs
// float32 its relative accuracy in the negative tail (x = -3 was off by 4e-5).
static void gelu_forward(float* out, const float* inp, int64_t N) {
  parallel_for(N, kPointwiseGrain, [=](int64_t i0, int64_t i1) {
#pragma omp simd
    for (int64_t i = i0; i < i1; i++) {
      const float x = inp[i];
      out[i] = x * sigmoid_approx(2.0f * GELU_K * (x + 0.044715f * x * x * x));
    }
  });
}

// d/dx [x s(2u)] with s = sigmoid(2u): 0.5 (1 + tanh u) = s and 1 - tanh^2 u = 4 s (1 - s)
static inline float gelu_grad(float x) {
  const float s = sigmoid_approx(2.0f * GELU_K * (x + 0.044715f * x * x * x));
  return s + 2.0f * x * s * (1.0f - s) * GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
}

static void gelu_backward(float* dinp, const float* dout, const float* inp, int64_t N, bool accumulate) {
  parallel_for(N, kPointwiseGrain, [=](int64_t i0, int64_t i1) {
    if (accumulate) {
#pragma omp simd
      for (int64_t i = i0; i < i1; i++) dinp[i] += gelu_grad(inp[i]) * dout[i];
    } else {
#pragma omp simd
      for (int64_t i = i0; i < i1; i++) dinp[i] = gelu_grad(inp[i]) * dout[i];
    }
  });
}

static void add(float* out, const float* a, const float* b, int64_t N) {
  parallel_for(N, kPointwiseGrain, [=](int64_t i0, int64_t i1) {
#pragma omp simd
    for (int64_t i = i0; i < i1; i++) out[i] = a[i] + b[i];
  });
}

static void axpy(float* dst, const float* src, float s, int64_t N) {
  parallel_for(N, kPointwiseGrain, [=](int64_t i0, int64_t i1) {
#pragma omp simd
    for (int64_t i = i0; i < i1; i++) dst[i] += s * src[i];
  });
}

static void zero(float* x, int64_t N) {
  // on every thread: the buffers zeroed are cold (a whole step's traffic ago), so this is the cores' misses in parallel
  parallel_for(N, 4 * kPointwiseGrain, [=](int64_t i0, int64_t i1) {
    std::memset(x + i0, 0, static_cast<size_t>(i1 - i0) * sizeof(float));
  });
}

// ------------------------------------------------------------------------------------------------ dropout
//
// The mask is the TypeScript backend's, bit for bit (src/backend/kernels.ts, dropoutKeeps and mix32, the
// "lowbias32" hash of key ^ i * 0x9e3779b9), so that forward, a recomputed forward and backward drop the same
// elements on every backend and a run resumes to the same masks. The arithmetic is the reference's too: the scale
// 1 / (1 - p) is a double and each value is rounded to float once (these loops are bound by memory, not by the
// double multiply), so forward is bit for bit; backward's multiply-add may be contracted into an FMA (one
// rounding fewer than JavaScript's).

static inline uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x21f0aaadu;
  x ^= x >> 15;
  x *= 0x735a2d97u;
  return x ^ (x >> 15);
}

/**
 * The smallest hash kept: h >= p * 2^32 for an integer h is h >= ceil(p * 2^32). False when that is 2^32 (p within
 * 2^-32 of 1): no element is kept.
 */
static inline bool dropout_threshold(double p, uint32_t* threshold) {
  const double t = std::ceil(p * 4294967296.0);
  *threshold = t <= 0.0 ? 0u : t >= 4294967296.0 ? 0xffffffffu : uint32_t(t);
  return t < 4294967296.0;
}

/**
 * Forward: inp (N) -> out (N) written, kept values scaled, the rest 0. Backward: dout (N) -> dinp (N), kept elements
 * accumulated. The loop reads its inputs unconditionally and selects, with every capture copied to a local first:
 * reading them through the closure and loading only kept elements left GCC with a scalar loop and a branch per element
 * (and two threads ran it no faster than one).
 */
template <bool kBackward>
static void dropout_pass(float* dst, const float* src, int64_t N, uint32_t key, double p) {
  uint32_t threshold;
  if (!dropout_threshold(p, &threshold)) {
    if (!kBackward) zero(dst, N);
    return;
  }
  const double inv = 1.0 / (1.0 - p);
  parallel_for(N, kPointwiseGrain, [=](int64_t i0, int64_t i1) {
    float* __restrict d = dst;
    const float* __restrict x = src;
    const uint32_t k = key, t = threshold;
    const double s = inv;
#pragma omp simd
    for (int64_t i = i0; i < i1; i++) {
      const bool keep = mix32(k ^ (uint32_t(i) * 0x9e3779b9u)) >= t;
      if constexpr (kBackward) {
        const float sum = float(double(d[i]) + double(x[i]) * s);
        d[i] = keep ? sum : d[i];
      } else {
        const float kept = float(double(x[i]) * s);
        d[i] = keep ? kept : 0.0f;
      }
    }
  });
}

static void dropout_forward(float* out, const float* inp, int64_t N, uint32_t key, double p) {
  dropout_pass<false>(out, inp, N, key, p);
}

static void dropout_backward(float* dinp, const float* dout, int64_t N, uint32_t key, double p) {
  dropout_pass<true>(dinp, dout, N, key, p);
}

// ------------------------------------------------------------------------------------------------ loss head

static void logprob_forward(float* logp, float* lse, const float* logits, const int32_t* targets, int64_t N,
                            int64_t V) {
  parallel_for(N, max64(1, ceil_div(kPointwiseGrain, max64(V, 1))), [=](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) {
      const int32_t tgt = targets[n];
      if (tgt < 0) {
        logp[n] = 0.0f;
        lse[n] = 0.0f;
        continue;
      }
      const float* x = logits + n * V;
      float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
      for (int64_t j = 0; j < V; j++) mx = x[j] > mx ? x[j] : mx;
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < V; j++) sum += exp_approx(x[j] - mx);
      const double l = double(mx) + std::log(double(sum));
      lse[n] = float(l);
      logp[n] = float(double(x[tgt]) - l);
    }
  });
}

/**
 * The metrics' per-row statistics. One pass takes the max and the float64 sum (float64 lanes: a float32 sum over a
 * 150k vocabulary could lose the mean to cancellation when it is near zero), a second finds the first index
 * equal to that max, so ties resolve to the lowest index as torch.argmax does whatever order the vector max
 * reduction combined its lanes in. The second pass tests 64 floats at a time with vector compares and only
 * scans the block that holds the hit.
 */
static void logits_stats(float* mean, int32_t* argmax, const float* logits, int64_t N, int64_t V) {
  parallel_for(N, max64(1, ceil_div(kPointwiseGrain, max64(V, 1))), [=](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) {
      const float* x = logits + n * V;
      float mx = -INFINITY;
      double sum = 0.0;
#pragma omp simd reduction(max : mx) reduction(+ : sum)
      for (int64_t j = 0; j < V; j++) {
        mx = x[j] > mx ? x[j] : mx;
        sum += double(x[j]);
      }
      mean[n] = float(sum / double(V));
      int64_t j = 0;
      for (; j + 64 <= V; j += 64) {
        int hit = 0;
#pragma omp simd reduction(| : hit)
        for (int64_t b = 0; b < 64; b++) hit |= x[j + b] == mx ? 1 : 0;
        if (hit) break;
      }
      while (j < V && !(x[j] == mx)) j++;
      // no element equals the max only in a row of NaNs (the mean says so): report 0, still a valid index
      argmax[n] = j < V ? static_cast<int32_t>(j) : 0;
    }
  });
}

static void logprob_backward(float* dlogits, const float* dlogp, const float* logits, const float* lse,
                             const int32_t* targets, int64_t N, int64_t V) {
  parallel_for(N, max64(1, ceil_div(kPointwiseGrain, max64(V, 1))), [=](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) {
      const int32_t tgt = targets[n];
      float* dx = dlogits + n * V;
      if (tgt < 0) {
        std::memset(dx, 0, static_cast<size_t>(V) * 4);
        continue;
      }
      const float* x = logits + n * V;  // may be dx: every element is read before it is written
      const float g = dlogp[n], l = lse[n];
#pragma omp simd
      for (int64_t j = 0; j < V; j++) dx[j] = -g * exp_approx(x[j] - l);
      dx[tgt] += g;
    }
  });
}

// ------------------------------------------------------------------------------------------------ optimizer

static void adamw_step(float* params, const float* grads, float* m, float* v, int64_t N, double lr, double beta1,
                       double beta2, double eps, double weightDecay, double step) {
  const float step_size = float(lr / (1.0 - std::pow(beta1, step)));
  const float inv_sqrt_bc2 = float(1.0 / std::sqrt(1.0 - std::pow(beta2, step)));
  const float decay = float(1.0 - lr * weightDecay);
  const float b1 = float(beta1), b2 = float(beta2), omb1 = float(1.0 - beta1), omb2 = float(1.0 - beta2);
  const float e = float(eps);
  parallel_for(N, kPointwiseGrain, [=](int64_t i0, int64_t i1) {
#pragma omp simd
    for (int64_t i = i0; i < i1; i++) {
      const float g = grads[i];
      const float mi = b1 * m[i] + omb1 * g;
      const float vi = b2 * v[i] + omb2 * g * g;
      m[i] = mi;
      v[i] = vi;
      params[i] = params[i] * decay - step_size * mi / (std::sqrt(vi) * inv_sqrt_bc2 + e);
    }
  });
}

static double sum_squares(const float* x, int64_t N) {
  const int64_t threads = pool_threads();
  double partial[256] = {0};
  const int64_t chunks = min64(min64(threads, 256), max64(1, ceil_div(N, kPointwiseGrain)));
  const int64_t step = ceil_div(max64(N, 1), chunks);
  auto task = [&](int64_t t) {
    const int64_t i0 = t * step, i1 = min64(N, i0 + step);
    // 32 independent float64 partial sums: one running sum would be bound by the add latency (one element
    // per 4 cycles); these map onto 4 vector accumulators and run at load speed.
    double lanes[32] = {0};
    int64_t i = i0;
    for (; i + 32 <= i1; i += 32) {
#pragma omp simd
      for (int l = 0; l < 32; l++) lanes[l] += double(x[i + l]) * double(x[i + l]);
    }
    double s = 0.0;
    for (; i < i1; i++) s += double(x[i]) * double(x[i]);
    for (int l = 0; l < 32; l++) s += lanes[l];
    partial[t] = s;
  };
  run_tasks(chunks, task);
  double total = 0.0;
  for (int64_t t = 0; t < chunks; t++) total += partial[t];
  return total;
}

static void scale(float* x, float s, int64_t N) {
  parallel_for(N, kPointwiseGrain, [=](int64_t i0, int64_t i1) {
#pragma omp simd
    for (int64_t i = i0; i < i1; i++) x[i] *= s;
  });
}

// ------------------------------------------------------------------------------------------------ peak probe

/** seconds spent running `iters` rounds of 12 independent FMA chains; returns flops done */
static double fma_chains(int64_t iters) {
  constexpr int chains = 12;  // >= FMA latency x FMA pipes, so the pipes never wait for a result
  vf acc[chains];
  const vf mul = vset(0.999999f), add = vset(1e-7f);
  for (int i = 0; i < chains; i++) acc[i] = vset(float(i));
  for (int64_t it = 0; it < iters; it++) {
#pragma GCC unroll 12
    for (int i = 0; i < chains; i++) acc[i] = vfma(acc[i], mul, add);
  }
  vf total = acc[0];
  for (int i = 1; i < chains; i++) total = vadd(total, acc[i]);
  alignas(64) float lanes[VL];
  vstore(lanes, total);
  volatile float sink = lanes[0];
  (void)sink;
  return double(iters) * chains * VL * 2;
}

/**
 * Sum over `threads` threads of (flops / that thread's CPU seconds), best of three rounds. Measured in CPU time
 * so that other processes on a shared machine lower the number only through shared-core effects (frequency,
 * SMT), not by taking the core away mid-measurement.
 */
static double fma_peak_gflops(int threads) {
  if (threads < 1) threads = 1;
  if (threads > 256) threads = 256;
  const int64_t iters = 10000000;  // ~0.05 s per thread on a 3 GHz core
  double best = 0.0;
  for (int rep = 0; rep < 3; rep++) {
    double rate[256] = {0};
    auto task = [&](int64_t t) {
      const double t0 = thread_cpu_seconds();
      const double flops = fma_chains(iters);
      rate[t] = flops / (thread_cpu_seconds() - t0);
    };
    run_tasks(threads, task);
    double total = 0.0;
    for (int t = 0; t < threads; t++) total += rate[t];
    best = total * 1e-9 > best ? total * 1e-9 : best;
  }
  return best;
}

}  // namespace ORPO_ISA

const KernelTable ORPO_TABLE = {
    ORPO_ISA_NAME,
    ORPO_ISA::gemm,
    ORPO_ISA::matmul_forward,
    ORPO_ISA::matmul_backward,
    ORPO_ISA::matmul_forward_bf16,
    ORPO_ISA::matmul_backward_bf16,
    ORPO_ISA::embedding_forward_bf16,
    ORPO_ISA::embedding_forward,
    ORPO_ISA::embedding_backward,
    ORPO_ISA::layernorm_forward,
    ORPO_ISA::layernorm_backward,
    ORPO_ISA::rmsnorm_forward,
    ORPO_ISA::rmsnorm_backward,
    ORPO_ISA::rope_forward,
    ORPO_ISA::rope_backward,
    ORPO_ISA::attention_forward,
    ORPO_ISA::attention_backward,
    ORPO_ISA::attention_decode,
    ORPO_ISA::swiglu_forward,
    ORPO_ISA::swiglu_backward,
    ORPO_ISA::gelu_forward,
    ORPO_ISA::gelu_backward,
    ORPO_ISA::add,
    ORPO_ISA::axpy,
    ORPO_ISA::zero,
    ORPO_ISA::dropout_forward,
    ORPO_ISA::dropout_backward,
    ORPO_ISA::logprob_forward,
    ORPO_ISA::logits_stats,
    ORPO_ISA::logprob_backward,
    ORPO_ISA::adamw_step,
    ORPO_ISA::sum_squares,
    ORPO_ISA::scale,
    ORPO_ISA::fma_peak_gflops,
    ORPO_ISA::gemm_info,
    ORPO_ISA::gemm_configure,
};

}  // namespace orpo
