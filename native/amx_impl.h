// The AMX bf16 GEMM (see amx.h), written once over a thin layer of tile operations that is a template parameter:
//   TilesHw:  the real instructions (_tile_loadconfig, _tile_loadd, _tile_dpbf16ps, _tile_stored, _tile_zero,
//             _tile_release), compiled only inside target attributes;
//   TilesEmu: a scalar emulation of the same eight tile registers, TDPBF16PS following the pseudocode of Intel's
//             SDM (see TilesEmu::dp), so native/test/amx.cc can run the GEMM, packing and blocking included, on CPUs
//             without AMX. It checks the shapes the hardware checks (#UD there, abort here), so a wrong
//             tile configuration fails the test too.
//
// Included by amx.cc (the addon's build, with the hardware layer) and by native/test/amx.cc (the harness). Everything
// is in an anonymous namespace: each includer gets its own copy, and nothing here can be merged by the linker with
// code compiled for another instruction set.
//
// Layout. A block of A (mc x kc) is packed as bf16 into 16-row groups, each cut along k into 32-deep tiles of 16 rows
// x 64 bytes (1 KiB, contiguous: row stride 64); B panels (kc x nc) into 16-column groups in the VNNI layout
// TDPBF16PS reads (the layout of kernels_impl.h's to_bf16_pairs with width 16): row p of a group holds, per column,
// the bf16 of k = 2p in the low half and k = 2p + 1 in the high half, and 16 such rows (32 values of k) make a tile.
// Rows past M, columns past N and k past K are zeros, so every tile is whole: one tile configuration for all sizes.
// The micro-kernel is 32x32 of C: 4 accumulator tiles (tmm0..3), two A tiles (tmm4, 5) and two B tiles (tmm6, 7),
// each loaded tile used twice per 32-deep step. Accumulators start at zero per k block and are added to C after,
// as the float32 micro-kernels do.
//
// -DORPO_AMX_TEST_BREAK=n (the harness only; never in the addon) breaks one thing on purpose so the test can show
// its checks catch it: 1 the products added to C one by one (the Intrinsics Guide's reading, not the SDM's), 2 no
// rounding inside the sums, 3 no DAZ on bf16 inputs, 4 operands truncated instead of rounded to nearest even, 5 an odd
// K's last k dropped.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

// The hardware layer needs the AMX intrinsic headers (GCC 11, Clang 12); older compilers build the emulation only
// and the addon reports AMX unavailable.
#if defined(__x86_64__) && ((defined(__clang__) && __clang_major__ >= 12) || (!defined(__clang__) && __GNUC__ >= 11))
#define ORPO_AMX_HW 1
#include <immintrin.h>
#define ORPO_AMX_TARGET __attribute__((target("amx-tile,amx-bf16")))
#else
#define ORPO_AMX_HW 0
#define ORPO_AMX_TARGET
#endif

#ifndef ORPO_AMX_TEST_BREAK
#define ORPO_AMX_TEST_BREAK 0
#endif

namespace orpo {
namespace amx {
namespace {

// ------------------------------------------------------------------------------------------------ bf16

/** x rounded to the nearest bf16, ties to even, NaN kept quiet: the bits of kernels_impl.h's bf16_bits */
inline uint16_t to_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
#if ORPO_AMX_TEST_BREAK == 4
  return static_cast<uint16_t>(u >> 16);
#else
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const uint32_t quiet_nan = (u >> 16) | 0x40u;
  return static_cast<uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
#endif
}

inline float from_bf16(uint16_t h) {
  const uint32_t u = uint32_t(h) << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

// ------------------------------------------------------------------------------------------------ tile config

/** LDTILECFG's 64-byte operand (palette 1): bytes per row and rows of each of the 8 tiles */
struct alignas(64) TileConfig {
  uint8_t palette;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};
static_assert(sizeof(TileConfig) == 64, "LDTILECFG reads 64 bytes");

// The micro-kernel's tiles
constexpr int kC00 = 0, kC01 = 1, kC10 = 2, kC11 = 3, kA0 = 4, kA1 = 5, kB0 = 6, kB1 = 7;
constexpr int kTileRows = 16, kTileBytes = 64;  // every tile: 16 rows of 64 bytes (16 fp32, 32 bf16, 16 bf16 pairs)
constexpr int64_t kStep = 32;                   // k per tile step, rows and columns per micro-kernel

// Static, not built on the stack: GCC 12's _tile_loadconfig tells the compiler it reads only the first 8 bytes, so
// stores to the rest of a local could be reordered past it.
const TileConfig kGemmConfig = {1, 0, {}, {64, 64, 64, 64, 64, 64, 64, 64}, {16, 16, 16, 16, 16, 16, 16, 16}};

// ------------------------------------------------------------------------------------------------ hardware layer

#if ORPO_AMX_HW
/**
 * The real tile instructions. GCC's tile intrinsics are asm statements that stringify the tile number, so each
 * number is spelled out; the empty asm with a memory clobber before loads and the config keeps the compiler from
 * sinking the packing stores past them (the intrinsics do not say they read memory).
 */
struct TilesHw {
  static ORPO_AMX_TARGET void config(const TileConfig* cfg) {
    asm volatile("" ::: "memory");
    _tile_loadconfig(cfg);
  }
  static ORPO_AMX_TARGET void release() { _tile_release(); }
  template <int T>
  static ORPO_AMX_TARGET void load(const void* p, int64_t stride) {
    asm volatile("" ::: "memory");
    if constexpr (T == 0) _tile_loadd(0, p, stride);
    else if constexpr (T == 1) _tile_loadd(1, p, stride);
    else if constexpr (T == 2) _tile_loadd(2, p, stride);
    else if constexpr (T == 3) _tile_loadd(3, p, stride);
    else if constexpr (T == 4) _tile_loadd(4, p, stride);
    else if constexpr (T == 5) _tile_loadd(5, p, stride);
    else if constexpr (T == 6) _tile_loadd(6, p, stride);
    else if constexpr (T == 7) _tile_loadd(7, p, stride);
    else static_assert(T >= 0 && T < 8, "tmm0..7");
  }
  template <int T>
  static ORPO_AMX_TARGET void store(void* p, int64_t stride) {
    if constexpr (T == 0) _tile_stored(0, p, stride);
    else if constexpr (T == 1) _tile_stored(1, p, stride);
    else if constexpr (T == 2) _tile_stored(2, p, stride);
    else if constexpr (T == 3) _tile_stored(3, p, stride);
    else if constexpr (T == 4) _tile_stored(4, p, stride);
    else if constexpr (T == 5) _tile_stored(5, p, stride);
    else if constexpr (T == 6) _tile_stored(6, p, stride);
    else if constexpr (T == 7) _tile_stored(7, p, stride);
    else static_assert(T >= 0 && T < 8, "tmm0..7");
  }
  template <int T>
  static ORPO_AMX_TARGET void zero() {
    if constexpr (T == 0) _tile_zero(0);
    else if constexpr (T == 1) _tile_zero(1);
    else if constexpr (T == 2) _tile_zero(2);
    else if constexpr (T == 3) _tile_zero(3);
    else if constexpr (T == 4) _tile_zero(4);
    else if constexpr (T == 5) _tile_zero(5);
    else if constexpr (T == 6) _tile_zero(6);
    else if constexpr (T == 7) _tile_zero(7);
    else static_assert(T >= 0 && T < 8, "tmm0..7");
  }
  /** tmm C += tmm A (rows x K/2 pairs) . tmm B (K/2 rows x N pairs): the four combinations the GEMM uses */
  template <int C, int A, int B>
  static ORPO_AMX_TARGET void dp() {
    if constexpr (C == 0 && A == 4 && B == 6) _tile_dpbf16ps(0, 4, 6);
    else if constexpr (C == 1 && A == 4 && B == 7) _tile_dpbf16ps(1, 4, 7);
    else if constexpr (C == 2 && A == 5 && B == 6) _tile_dpbf16ps(2, 5, 6);
    else if constexpr (C == 3 && A == 5 && B == 7) _tile_dpbf16ps(3, 5, 7);
    else static_assert(C < 0, "add the combination here");
  }
};
#endif

// ------------------------------------------------------------------------------------------------ emulation

/** float32 bits -> value and back, for DAZ/FTZ */
inline bool is_subnormal(float x) { return x != 0.0f && std::fabs(x) < 1.17549435e-38f; }
inline float flush(float x) { return is_subnormal(x) ? std::copysign(0.0f, x) : x; }

/**
 * One FMA of TDPBF16PS: "FP32 FMA with DAZ=FTZ=1, RNE rounding" of a running float32 sum and one bf16 product (each
 * bf16 widened by placing it in the top half of a float32, make_fp32). Subnormal inputs count as zero, a subnormal
 * result is flushed to zero, the one rounding is to nearest even. (A product of two bf16 is exact in float32 away
 * from overflow and underflow, so FMA and multiply-then-add differ only there.)
 */
inline float dp_step(float acc, uint16_t a, uint16_t b) {
#if ORPO_AMX_TEST_BREAK == 3
  return flush(std::fma(from_bf16(a), from_bf16(b), flush(acc)));
#else
  return flush(std::fma(flush(from_bf16(a)), flush(from_bf16(b)), flush(acc)));
#endif
}

/** a + b with DAZ=FTZ=1 and RNE: TDPBF16PS's two closing additions */
inline float add_daz_ftz(float a, float b) { return flush(flush(a) + flush(b)); }

/**
 * The tile registers of the calling thread, emulated: 8 tiles of 16 rows x 64 bytes and the loaded configuration.
 * Loads and stores move rows x colsb bytes as configured (the rest of each tile reads as zero, as after TILELOADD),
 * and TDPBF16PS checks the shapes the hardware checks.
 */
struct TilesEmu {
  struct State {
    TileConfig cfg;
    bool configured;
    alignas(64) uint8_t t[8][kTileRows][kTileBytes];
  };
  static inline thread_local State st{};

  [[noreturn]] static void fault(const char* what) {
    std::fprintf(stderr, "amx emulation: %s (the hardware raises #UD)\n", what);
    std::abort();
  }
  static void check_tile(int t) {
    if (!st.configured) fault("tile instruction without a loaded tile configuration");
    if (st.cfg.rows[t] == 0 || st.cfg.colsb[t] == 0) fault("tile not configured");
  }
  static void config(const TileConfig* cfg) {
    if (cfg->palette != 1) fault("palette other than 1");
    for (int t = 0; t < 8; t++)
      if (cfg->rows[t] > kTileRows || cfg->colsb[t] > kTileBytes || cfg->colsb[t] % 4) fault("tile shape out of range");
    st.cfg = *cfg;
    st.configured = true;
    std::memset(st.t, 0, sizeof st.t);  // LDTILECFG zeroes every tile
  }
  static void release() {
    st.configured = false;
    std::memset(st.t, 0, sizeof st.t);
  }
  template <int T>
  static void load(const void* p, int64_t stride) {
    check_tile(T);
    std::memset(st.t[T], 0, sizeof st.t[T]);
    for (int r = 0; r < st.cfg.rows[T]; r++)
      std::memcpy(st.t[T][r], static_cast<const uint8_t*>(p) + r * stride, st.cfg.colsb[T]);
  }
  template <int T>
  static void store(void* p, int64_t stride) {
    check_tile(T);
    for (int r = 0; r < st.cfg.rows[T]; r++)
      std::memcpy(static_cast<uint8_t*>(p) + r * stride, st.t[T][r], st.cfg.colsb[T]);
  }
  template <int T>
  static void zero() {
    check_tile(T);
    std::memset(st.t[T], 0, sizeof st.t[T]);
  }
  /**
   * TDPBF16PS tmm C, tmm A, tmm B, as the SDM's pseudocode (Vol. 2, TDPBF16PS, "Operation") has it: per row m of C,
   * two float32 sums per column n start at zero, the even one taking the products of the low halves of each pair
   * and the odd one those of the high halves, k = 0, 1, ... in order:
   *   temp.fp32[2n]     += make_fp32(A.row[m].bf16[2k])     * make_fp32(B.row[k].bf16[2n])
   *   temp.fp32[2n + 1] += make_fp32(A.row[m].bf16[2k + 1]) * make_fp32(B.row[k].bf16[2n + 1])
   * each an FMA with DAZ, FTZ and round to nearest even (dp_step); then
   *   C.row[m].fp32[n] = C.row[m].fp32[n] + (temp.fp32[2n] + temp.fp32[2n + 1])
   * (two additions, DAZ, FTZ, RNE). The rest of each row of C is zeroed, and the rows past C.rows. Shapes as the
   * hardware requires them: A.rows = C.rows, B.rows = A.colsb / 4, B.colsb = C.colsb.
   * (The Intrinsics Guide's shorter pseudocode adds each product straight to C, low half then high half: other
   * roundings. -DORPO_AMX_TEST_BREAK=1 is that reading; the harness's unit checks tell the two apart, and run on the
   * instruction itself where a CPU has it.)
   */
  template <int C, int A, int B>
  static void dp() {
    static_assert(C != A && C != B && A != B, "TDPBF16PS needs three distinct tiles");
    check_tile(C);
    check_tile(A);
    check_tile(B);
    const TileConfig& cfg = st.cfg;
    const int M = cfg.rows[C], N = cfg.colsb[C] / 4, KP = cfg.colsb[A] / 4;
    if (cfg.rows[A] != M || cfg.rows[B] != KP || cfg.colsb[B] != cfg.colsb[C]) fault("TDPBF16PS shape mismatch");
    float c[kTileRows][16];
    uint16_t a[kTileRows][32], b[kTileRows][32];
    std::memcpy(c, st.t[C], sizeof c);
    std::memcpy(a, st.t[A], sizeof a);
    std::memcpy(b, st.t[B], sizeof b);
    for (int m = 0; m < M; m++) {
#if ORPO_AMX_TEST_BREAK == 1
      // the Intrinsics Guide's reading: each product added to C in turn
      for (int k = 0; k < KP; k++)
        for (int n = 0; n < N; n++) {
          c[m][n] = dp_step(c[m][n], a[m][2 * k], b[k][2 * n]);
          c[m][n] = dp_step(c[m][n], a[m][2 * k + 1], b[k][2 * n + 1]);
        }
#elif ORPO_AMX_TEST_BREAK == 2
      // no rounding inside the two sums: float64 sums of the exact products, rounded once at the end
      for (int n = 0; n < N; n++) {
        double sum = 0.0;
        for (int k = 0; k < KP; k++)
          sum += double(flush(from_bf16(a[m][2 * k]))) * flush(from_bf16(b[k][2 * n])) +
                 double(flush(from_bf16(a[m][2 * k + 1]))) * flush(from_bf16(b[k][2 * n + 1]));
        c[m][n] = flush(float(double(flush(c[m][n])) + sum));
      }
#else
      float even[16] = {}, odd[16] = {};
      for (int k = 0; k < KP; k++)
        for (int n = 0; n < N; n++) {
          even[n] = dp_step(even[n], a[m][2 * k], b[k][2 * n]);
          odd[n] = dp_step(odd[n], a[m][2 * k + 1], b[k][2 * n + 1]);
        }
      for (int n = 0; n < N; n++) c[m][n] = add_daz_ftz(c[m][n], add_daz_ftz(even[n], odd[n]));
#endif
      for (int n = N; n < 16; n++) c[m][n] = 0.0f;
    }
    for (int m = M; m < kTileRows; m++)
      for (int n = 0; n < 16; n++) c[m][n] = 0.0f;
    std::memcpy(st.t[C], c, sizeof c);
  }
};

// ------------------------------------------------------------------------------------------------ packing

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/** per-thread packing buffers, reused across calls (a fresh large malloc per GEMM would fault its pages each time) */
inline void* scratch(int slot, int64_t bytes) {
  static thread_local void* buf[2];
  static thread_local int64_t cap[2];
  if (cap[slot] < bytes) {
    std::free(buf[slot]);
    cap[slot] = round_up(max64(bytes, 4096), 64);
    buf[slot] = std::aligned_alloc(64, static_cast<size_t>(cap[slot]));
    if (!buf[slot]) {
      std::fprintf(stderr, "orpo: out of memory for the AMX packing buffers\n");
      std::abort();
    }
  }
  return buf[slot];
}

/**
 * A (i0.., k0..) block of mc x kc (element (i,k) at a[i * ars + k * acs]) -> bf16 tiles: 16-row group g, k step q
 * at dst + (g * nq + q) * 512, row r of that tile at + r * 32. mcp, kcp: mc, kc rounded up to 32 (zeros there).
 */
inline void pack_a(uint16_t* dst, const float* a, int64_t ars, int64_t acs, int64_t i0, int64_t mc, int64_t mcp,
                   int64_t k0, int64_t kc, int64_t kcp) {
  const int64_t nq = kcp / kStep;
  for (int64_t g = 0; g < mcp / 16; g++) {
    for (int64_t q = 0; q < nq; q++) {
      uint16_t* d = dst + (g * nq + q) * 512;
      const int64_t kn = min64(kStep, max64(0, kc - q * kStep));  // valid k in this step
      const int64_t rn = min64(16, max64(0, mc - g * 16));         // valid rows in this group
      if (acs == 1) {  // rows contiguous along k
        for (int64_t r = 0; r < 16; r++) {
          uint16_t* dr = d + r * 32;
          int64_t kk = 0;
          if (r < rn) {
            const float* src = a + (i0 + g * 16 + r) * ars + k0 + q * kStep;
            for (; kk < kn; kk++) dr[kk] = to_bf16(src[kk]);
          }
          for (; kk < kStep; kk++) dr[kk] = 0;
        }
      } else {  // stored transposed (or strided both ways): k outer, so a transposed A's rows are read in order
        for (int64_t kk = 0; kk < kStep; kk++) {
          int64_t r = 0;
          if (kk < kn) {
            const float* src = a + (i0 + g * 16) * ars + (k0 + q * kStep + kk) * acs;
            for (; r < rn; r++) d[r * 32 + kk] = to_bf16(src[r * ars]);
          }
          for (; r < 16; r++) d[r * 32 + kk] = 0;
        }
      }
    }
  }
}

/** a B element as bf16 bits: a float rounded to nearest even, a bf16 weight (its bits) as it is */
inline uint16_t b_bits(float x) { return to_bf16(x); }
inline uint16_t b_bits(uint16_t h) { return h; }

/**
 * B (k0.., j0..) panel of kc x nc (element (k,j) at b[k * brs + j * bcs]; TB float, or uint16_t for a weight held as
 * bf16 bits) -> VNNI pairs: 16-column group h at dst + h * (kcp / 2) * 16, row p (k = 2p, 2p + 1) of it at + p * 16,
 * so k step q's tile is at + q * 256.
 */
template <class TB>
void pack_b(uint32_t* dst, const TB* b, int64_t brs, int64_t bcs, int64_t k0, int64_t kc, int64_t kcp, int64_t j0,
            int64_t nc, int64_t ncp) {
#if ORPO_AMX_TEST_BREAK == 5
  kc &= ~int64_t(1);
#endif
  const int64_t kp = kcp / 2;
  for (int64_t h = 0; h < ncp / 16; h++) {
    uint32_t* d = dst + h * kp * 16;
    const int64_t cols = min64(16, max64(0, nc - h * 16));
    if (cols == 0) {  // a group wholly past the last column (N off 32): zeros
      std::memset(d, 0, static_cast<size_t>(kp) * 64);
      continue;
    }
    const TB* col0 = b + k0 * brs + (j0 + h * 16) * bcs;
    if (bcs == 1 && cols == 16) {  // row-major: 16 consecutive values per k, two rows per pair row
      for (int64_t p = 0; p < kp; p++) {
        uint32_t* dp = d + p * 16;
        const TB* r0 = col0 + 2 * p * brs;
        if (2 * p + 1 < kc) {
          for (int j = 0; j < 16; j++) dp[j] = uint32_t(b_bits(r0[j])) | uint32_t(b_bits(r0[brs + j])) << 16;
        } else if (2 * p < kc) {  // odd kc: the last pair's high half is zero
          for (int j = 0; j < 16; j++) dp[j] = b_bits(r0[j]);
        } else {
          for (int j = 0; j < 16; j++) dp[j] = 0;
        }
      }
    } else {  // stored transposed (columns contiguous along k), or the last, partial group
      for (int64_t p = 0; p < kp; p++) {
        uint32_t* dp = d + p * 16;
        const bool lo = 2 * p < kc, hi = 2 * p + 1 < kc;
        for (int64_t j = 0; j < 16; j++) {
          uint32_t pair = 0;
          if (j < cols && lo) {
            const TB* src = col0 + j * bcs + 2 * p * brs;
            pair = b_bits(src[0]);
            if (hi) pair |= uint32_t(b_bits(src[brs])) << 16;
          }
          dp[j] = pair;
        }
      }
    }
  }
}

// ------------------------------------------------------------------------------------------------ GEMM

/**
 * c (32 x 32, row stride ldc_bytes) = A rows (two 16-row groups of nq tiles) x B columns (two 16-column groups):
 * every loaded tile feeds two TDPBF16PS.
 */
template <class Tiles>
ORPO_AMX_TARGET void micro_kernel(const uint16_t* a0, const uint16_t* a1, const uint32_t* b0, const uint32_t* b1,
                                  int64_t nq, float* c, int64_t ldc_bytes) {
  Tiles::template zero<kC00>();
  Tiles::template zero<kC01>();
  Tiles::template zero<kC10>();
  Tiles::template zero<kC11>();
  for (int64_t q = 0; q < nq; q++) {
    Tiles::template load<kA0>(a0 + q * 512, kTileBytes);
    Tiles::template load<kB0>(b0 + q * 256, kTileBytes);
    Tiles::template load<kB1>(b1 + q * 256, kTileBytes);
    Tiles::template dp<kC00, kA0, kB0>();
    Tiles::template dp<kC01, kA0, kB1>();
    Tiles::template load<kA1>(a1 + q * 512, kTileBytes);
    Tiles::template dp<kC10, kA1, kB0>();
    Tiles::template dp<kC11, kA1, kB1>();
  }
  char* cb = reinterpret_cast<char*>(c);
  Tiles::template store<kC00>(cb, ldc_bytes);
  Tiles::template store<kC01>(cb + 64, ldc_bytes);
  Tiles::template store<kC10>(cb + 16 * ldc_bytes, ldc_bytes);
  Tiles::template store<kC11>(cb + 16 * ldc_bytes + 64, ldc_bytes);
}

/**
 * The BLIS loop order of kernels_impl.h's gemm_serial, with 32 x 32 micro-tiles on the tiles (see amx.h); B float,
 * or uint16_t bf16 bits (a weight held in bf16)
 */
template <class Tiles, class TB>
void gemm(float* c, int64_t ldc, const float* a, int64_t ars, int64_t acs, const TB* b, int64_t brs, int64_t bcs,
          int64_t M, int64_t N, int64_t K, bool acc, int64_t KC, int64_t MC, int64_t NC) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!acc)
      for (int64_t i = 0; i < M; i++) std::memset(c + i * ldc, 0, static_cast<size_t>(N) * 4);
    return;
  }
  KC = max64(kStep, KC / kStep * kStep);
  MC = max64(kStep, MC / kStep * kStep);
  NC = max64(kStep, NC / kStep * kStep);
  const int64_t kcmax = min64(KC, round_up(K, kStep)), mcmax = min64(MC, round_up(M, kStep));
  const int64_t ncmax = min64(NC, round_up(N, kStep));
  uint32_t* bp = static_cast<uint32_t*>(scratch(0, kcmax / 2 * ncmax * 4));
  uint16_t* ap = static_cast<uint16_t*>(scratch(1, mcmax * kcmax * 2));
  alignas(64) float tile[kStep * kStep];
  Tiles::config(&kGemmConfig);
  for (int64_t jc = 0; jc < N; jc += NC) {
    const int64_t nc = min64(NC, N - jc), ncp = round_up(nc, kStep);
    for (int64_t pc = 0; pc < K; pc += KC) {
      const int64_t kc = min64(KC, K - pc), kcp = round_up(kc, kStep), nq = kcp / kStep;
      const bool acc_here = acc || pc > 0;
      pack_b(bp, b, brs, bcs, pc, kc, kcp, jc, nc, ncp);
      for (int64_t ic = 0; ic < M; ic += MC) {
        const int64_t mc = min64(MC, M - ic), mcp = round_up(mc, kStep);
        pack_a(ap, a, ars, acs, ic, mc, mcp, pc, kc, kcp);
        for (int64_t jr = 0; jr < ncp; jr += kStep) {
          const int64_t nr = min64(kStep, nc - jr);
          const uint32_t* b0 = bp + (jr / 16) * (kcp / 2) * 16;
          const uint32_t* b1 = b0 + (kcp / 2) * 16;
          for (int64_t ir = 0; ir < mcp; ir += kStep) {
            const int64_t mr = min64(kStep, mc - ir);
            const uint16_t* a0 = ap + (ir / 16) * nq * 512;
            const uint16_t* a1 = a0 + nq * 512;
            float* ct = c + (ic + ir) * ldc + (jc + jr);
            // a whole tile written over C goes straight there; edges and sums go through `tile`
            if (mr == kStep && nr == kStep && !acc_here) {
              micro_kernel<Tiles>(a0, a1, b0, b1, nq, ct, ldc * 4);
              continue;
            }
            micro_kernel<Tiles>(a0, a1, b0, b1, nq, tile, kStep * 4);
            for (int64_t r = 0; r < mr; r++) {
              float* cr = ct + r * ldc;
              const float* tr = tile + r * kStep;
              if (acc_here)
                for (int64_t j = 0; j < nr; j++) cr[j] += tr[j];
              else
                for (int64_t j = 0; j < nr; j++) cr[j] = tr[j];
            }
          }
        }
      }
    }
  }
  Tiles::release();
}

// ------------------------------------------------------------------------------------------------ self-check

struct CheckResult {
  bool ok;
  double worst;  // the worst |got - e| / tolerance (<= 1 passes)
  int64_t i, j;  // where
  double got, want;
  const char* layout;
};

/**
 * Two small products with odd sizes on the tiles against a float64 product of the same bf16-rounded operands: one in
 * the forward's layout (B stored transposed, accumulating into C), one in the backward's (A stored transposed, C
 * written), with 32-deep blocks so every block edge and the odd-K pair are crossed. Tolerance: float32 summation in
 * another order, 1e-4 of the sum of |terms| (a missing, doubled or misplaced term of these 83 is 1e-2 of it).
 */
template <class Tiles>
CheckResult self_check() {
  constexpr int64_t M = 37, N = 45, K = 83;
  static float a[M * K], b[K * N], c[M * N], c0[M * N];
  uint32_t x = 2463534242u;
  auto next = [&x] {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return float(int32_t(x >> 8) - (1 << 23)) * (1.0f / (1 << 23));
  };
  CheckResult worst{true, 0.0, -1, -1, 0.0, 0.0, ""};
  for (int layout = 0; layout < 2; layout++) {
    const bool forward = layout == 0;
    for (auto& v : a) v = next();
    for (auto& v : b) v = next();
    for (int64_t i = 0; i < M * N; i++) c[i] = c0[i] = forward ? next() : 0.0f;
    // forward: A (M,K) row-major, B stored (N,K); backward: A stored (K,M), B (K,N) row-major
    const int64_t ars = forward ? K : 1, acs = forward ? 1 : M, brs = forward ? 1 : N, bcs = forward ? K : 1;
    gemm<Tiles, float>(c, N, a, ars, acs, b, brs, bcs, M, N, K, forward, 32, 32, 32);
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) {
        double e = c0[i * N + j], size = std::fabs(e);
        for (int64_t k = 0; k < K; k++) {
          // rounded here with the hardware's own conversion rule written out again, not with to_bf16
          uint32_t ua, ub;
          std::memcpy(&ua, &a[i * ars + k * acs], 4);
          std::memcpy(&ub, &b[k * brs + j * bcs], 4);
          ua = (ua + 0x7fffu + ((ua >> 16) & 1u)) & 0xffff0000u;
          ub = (ub + 0x7fffu + ((ub >> 16) & 1u)) & 0xffff0000u;
          float fa, fb;
          std::memcpy(&fa, &ua, 4);
          std::memcpy(&fb, &ub, 4);
          e += double(fa) * double(fb);
          size += std::fabs(double(fa) * double(fb));
        }
        const double got = c[i * N + j];
        double err = std::fabs(got - e) / (1e-4 * size + 1e-30);
        if (!(err == err)) err = INFINITY;
        if (err > worst.worst) worst = CheckResult{err <= 1.0, err, i, j, got, e, forward ? "forward" : "backward"};
      }
  }
  worst.ok = worst.worst <= 1.0;
  return worst;
}

}  // namespace
}  // namespace amx
}  // namespace orpo
