// The AMX harness: runs the AMX bf16 GEMM of native/amx_impl.h on the EMULATED tiles (any x86-64 or other CPU) and,
// where this CPU has AMX and Linux grants it, on the real ones too, each product against a scalar float64 product of
// the bf16-rounded operands; plus unit checks of TDPBF16PS itself (the order of its sums, rounding after each
// product, DAZ on inputs and accumulator, FTZ, one whole tile bit for bit against the SDM's pseudocode written out
// here).
// On AMX hardware the unit checks run on the instruction too, so they check the emulation's reading of Intel's
// pseudocode against the silicon. test/native-amx.test.ts builds it with binding.gyp's flags and also builds it with
// -DORPO_AMX_TEST_BREAK=1..5 (see amx_impl.h), each of which must fail, so the checks cannot pass vacuously.
//
// Sizes are odd on purpose: M, N, K off 16 and 32 (the tile and micro-kernel sizes), K odd (the last bf16 pair half
// empty), and past each cache block once, with the addon's fixed AVX-512 blocks (KC 512, MC 96, NC 1024) and small
// ones (KC 64, MC 32, NC 64; and 70, 40, 100, which the GEMM rounds down to multiples of 32); every transposition of
// A and B, accumulate on and off, C with a row stride wider than N and guard words around it.
//
// Output: one JSON line per check on stdout, then a summary line; exit status 1 when any check fails.
// Build: g++ with binding.gyp's flags: this file, and ../amx.cc with the AVX-512 library's flags (see the test).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include "../amx.h"
#include "../amx_impl.h"
#include "harness.h"

namespace {

using orpo::amx::TileConfig;

struct Totals {
  int64_t checks = 0, failures = 0;
} totals;

const char* filter = nullptr;

using harness::json_string;

void report(const std::string& check, const std::string& label, bool ok, const std::string& detail) {
  totals.checks++;
  if (!ok) totals.failures++;
  std::printf("{\"check\":%s,\"case\":%s,\"ok\":%s,\"detail\":%s}\n", json_string(check).c_str(),
              json_string(label).c_str(), ok ? "true" : "false", json_string(detail).c_str());
}

using harness::Rng;

using harness::bf16_round;

float bits_float(uint32_t u) {
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}
uint32_t float_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
}

// ------------------------------------------------------------------------------------------------ TDPBF16PS

// Operands of one TDPBF16PS on whole 16 x 64-byte tiles (the GEMM's configuration): C fp32 16x16, A bf16 16x32,
// B bf16 pairs 16x16x2. Globals, so the stores are in memory before the tile loads (see TilesHw).
alignas(64) float tc[16][16];
alignas(64) uint16_t ta[16][32];
alignas(64) uint16_t tb[16][32];
alignas(64) float tout[16][16];

template <class Tiles>
void run_tdpbf16ps() {
  Tiles::config(&orpo::amx::kGemmConfig);
  Tiles::template load<0>(tc, 64);
  Tiles::template load<4>(ta, 64);
  Tiles::template load<6>(tb, 64);
  Tiles::template dp<0, 4, 6>();
  Tiles::template store<0>(tout, 64);
  Tiles::release();
}

void clear_tiles() {
  std::memset(tc, 0, sizeof tc);
  std::memset(ta, 0, sizeof ta);
  std::memset(tb, 0, sizeof tb);
}

uint16_t bf(float x) { return static_cast<uint16_t>(float_bits(x) >> 16); }  // x must be a bf16 value

/** one bf16 pair of A (row 0) and of B (column 0) for one k */
struct Pair {
  uint16_t a_lo, b_lo, a_hi, b_hi;
};

/** element (0,0) of C = acc and the pairs of k = 0, 1, ... (everything else zero) after one TDPBF16PS: its bits */
template <class Tiles>
uint32_t one_element(float acc, std::initializer_list<Pair> pairs) {
  clear_tiles();
  tc[0][0] = acc;
  int k = 0;
  for (const Pair& p : pairs) {
    ta[0][2 * k] = p.a_lo;
    ta[0][2 * k + 1] = p.a_hi;
    tb[k][0] = p.b_lo;
    tb[k][1] = p.b_hi;
    k++;
  }
  run_tdpbf16ps<Tiles>();
  return float_bits(tout[0][0]);
}

std::string hex(uint32_t u) {
  char s[32];
  std::snprintf(s, sizeof s, "0x%08x (%.9g)", u, double(bits_float(u)));
  return s;
}

/**
 * TDPBF16PS as the SDM's pseudocode defines it (see TilesEmu::dp), on cases built so that each other reading gives
 * other bits: the products of the low and high halves summed apart from zero (RNE, DAZ, FTZ after each), then the two
 * sums added, then that added to C.
 */
template <class Tiles>
void unit_checks(const char* layer) {
  struct Case {
    const char* name;
    float acc;
    std::initializer_list<Pair> pairs;
    uint32_t want;
    const char* why;
  };
  const uint16_t one = bf(1.0f), minus_one = bf(-1.0f), tiny = bf(std::ldexp(1.0f, -12));  // tiny^2 = 2^-24
  const Case cases[] = {
      // 2^-24 + 2^-24 = 2^-23, then 1 + 2^-23 (exact). Each product added to C in turn: 1 + 2^-24 is a tie, to even 1.
      {"products summed before C", 1.0f, {{tiny, tiny, tiny, tiny}}, float_bits(1.0f + std::ldexp(1.0f, -23)),
       "C + ((a_lo b_lo) + (a_hi b_hi))"},
      // low sum 1 + 2^-24 -> 1 (tie, even); high sum -1 + 2^-24 (exact); together 2^-24. Products added in turn to one
      // sum, or pair by pair, or without rounding: 2^-23.
      {"low and high halves summed apart over k", 0.0f, {{one, one, one, minus_one}, {tiny, tiny, tiny, tiny}},
       float_bits(std::ldexp(1.0f, -24)), "two float32 sums, one per half of the pairs, each rounded after each product"},
      // low sum 1, + 2^-24 -> 1, + 2^-24 -> 1 (ties to even); unrounded 1 + 2^-23
      {"rounding to nearest even after each product", 0.0f, {{one, one, 0, 0}, {tiny, tiny, 0, 0}, {tiny, tiny, 0, 0}},
       float_bits(1.0f), "each FMA rounds, ties to even"},
      // a subnormal bf16 (2^-133) times 2^100 would be 2^-33, a normal float32
      {"DAZ on a bf16 input", 0.0f, {{0x0001, bf(std::ldexp(1.0f, 100)), 0, 0}}, 0u, "subnormal inputs count as zero"},
      // 2^-70 * 2^-70 = 2^-140, a float32 subnormal
      {"FTZ on the result", 0.0f, {{bf(std::ldexp(1.0f, -70)), bf(std::ldexp(1.0f, -70)), 0, 0}}, 0u,
       "subnormal results are flushed to zero"},
      // C = 2^-130 (subnormal) + 2^-126: 2^-126 when C counts as zero
      {"DAZ on C", std::ldexp(1.0f, -130), {{bf(std::ldexp(1.0f, -63)), bf(std::ldexp(1.0f, -63)), 0, 0}},
       float_bits(std::ldexp(1.0f, -126)), "a subnormal accumulator counts as zero"},
      // the element wiring: 0.5 + 3 * 2 + (-1.5) * 4 = 0.5
      {"plain pair", 0.5f, {{bf(3.0f), bf(2.0f), bf(-1.5f), bf(4.0f)}}, float_bits(0.5f), "C + a_lo b_lo + a_hi b_hi"},
  };
  for (const Case& c : cases) {
    const uint32_t got = one_element<Tiles>(c.acc, c.pairs);
    report(std::string("tdpbf16ps ") + c.name, layer, got == c.want,
           std::string(c.why) + ": got " + hex(got) + ", want " + hex(c.want));
  }

  // One whole tile of random values against the SDM's pseudocode written out again here (layout: A row m holds the
  // pairs of k, B row k holds column n's pair at 2n, 2n + 1), bit for bit: every row and column of the product.
  Rng rng(20261201u);
  for (int m = 0; m < 16; m++)
    for (int n = 0; n < 16; n++) tc[m][n] = float(rng.uniform() * 8 - 4);
  for (int r = 0; r < 16; r++)
    for (int x = 0; x < 32; x++) {
      ta[r][x] = bf(float(bf16_round(float(rng.uniform() * 2 - 1))));
      tb[r][x] = bf(float(bf16_round(float(rng.uniform() * 2 - 1))));
    }
  float want[16][16];
  for (int m = 0; m < 16; m++)
    for (int n = 0; n < 16; n++) {
      float even = 0.0f, odd = 0.0f;
      for (int k = 0; k < 16; k++) {
        even = std::fma(bits_float(uint32_t(ta[m][2 * k]) << 16), bits_float(uint32_t(tb[k][2 * n]) << 16), even);
        odd = std::fma(bits_float(uint32_t(ta[m][2 * k + 1]) << 16), bits_float(uint32_t(tb[k][2 * n + 1]) << 16), odd);
      }
      want[m][n] = tc[m][n] + (even + odd);  // (no subnormals arise from these values)
    }
  std::memset(tout, 0xff, sizeof tout);
  run_tdpbf16ps<Tiles>();
  int bad = 0, first = -1;
  for (int x = 0; x < 256; x++)
    if (float_bits(tout[x / 16][x % 16]) != float_bits(want[x / 16][x % 16])) {
      bad++;
      if (first < 0) first = x;
    }
  std::string detail = std::to_string(bad) + " of 256 elements differ";
  if (first >= 0)
    detail += "; first (" + std::to_string(first / 16) + "," + std::to_string(first % 16) + "): got " +
              hex(float_bits(tout[first / 16][first % 16])) + ", want " + hex(float_bits(want[first / 16][first % 16]));
  report("tdpbf16ps whole tile", layer, bad == 0, detail);
}

// ------------------------------------------------------------------------------------------------ GEMM

template <class TB>
using GemmFn = void (*)(float*, int64_t, const float*, int64_t, int64_t, const TB*, int64_t, int64_t, int64_t, int64_t,
                        int64_t, bool, int64_t, int64_t, int64_t);

struct Blocks {
  int64_t kc, mc, nc;
  const char* name;
};

/** B's values: floats as drawn, or a bf16 weight (the bits of the drawn values rounded), and their float64 values */
void make_b(const std::vector<float>& drawn, std::vector<float>* b, std::vector<double>* rb) {
  *b = drawn;
  for (size_t i = 0; i < drawn.size(); i++) (*rb)[i] = bf16_round(drawn[i]);
}
void make_b(const std::vector<float>& drawn, std::vector<uint16_t>* b, std::vector<double>* rb) {
  b->resize(drawn.size());
  for (size_t i = 0; i < drawn.size(); i++) {
    (*rb)[i] = bf16_round(drawn[i]);
    (*b)[i] = static_cast<uint16_t>(float_bits(float((*rb)[i])) >> 16);
  }
}

/**
 * c (M,N) [+]= op(a) @ op(b) with C rows ldc = N + 3 apart and guard words around it; checked against float64 sums
 * of the bf16-rounded operands: |got - e| <= 2e-5 (|e| + mean|e|), native/test/parity.cc's rule for float32 sums of
 * up to ~1,100 terms (50x tighter than one wrong or missing term), guards and the 3 padding columns unchanged.
 * TB uint16_t: B is a weight held as bf16 bits (the bf16-weight kernels' operand).
 */
template <class TB>
void gemm_case(GemmFn<TB> fn, const char* layer, Rng& rng, const Blocks& blk, int64_t M, int64_t N, int64_t K,
               bool transA, bool transB, bool acc) {
  char label[160];
  std::snprintf(label, sizeof label, "%s M%lld N%lld K%lld tA=%d tB=%d acc=%d blocks %s%s", layer,
                static_cast<long long>(M), static_cast<long long>(N), static_cast<long long>(K), transA, transB, acc,
                blk.name, sizeof(TB) == 2 ? " B bf16" : "");
  if (filter && std::string(label).find(filter) == std::string::npos) return;
  const auto a = rng.floats(M * K), drawn = rng.floats(K * N), c0 = rng.floats(M * N);
  std::vector<TB> b;
  std::vector<double> ra(a.size()), rb(drawn.size()), e(static_cast<size_t>(M * N));
  make_b(drawn, &b, &rb);
  constexpr int64_t kGuard = 17;
  constexpr uint32_t kGuardWord = 0x7fc0beefu;
  const int64_t ldc = N + 3;
  std::vector<uint32_t> buf(static_cast<size_t>(2 * kGuard + M * ldc), kGuardWord);
  float* c = reinterpret_cast<float*>(buf.data() + kGuard);
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) c[i * ldc + j] = c0[i * N + j];
  const int64_t ars = transA ? 1 : K, acs = transA ? M : 1, brs = transB ? 1 : N, bcs = transB ? K : 1;
  fn(c, ldc, a.data(), ars, acs, b.data(), brs, bcs, M, N, K, acc, blk.kc, blk.mc, blk.nc);

  for (size_t i = 0; i < a.size(); i++) ra[i] = bf16_round(a[i]);
  double mean_abs = 0.0;
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) {
      double s = acc ? c0[i * N + j] : 0.0;
      for (int64_t k = 0; k < K; k++) s += ra[i * ars + k * acs] * rb[k * brs + j * bcs];
      e[i * N + j] = s;
      mean_abs += std::fabs(s);
    }
  mean_abs /= double(M * N);
  double worst = 0.0;
  int64_t worst_at = 0;
  for (int64_t x = 0; x < M * N; x++) {
    const double got = c[(x / N) * ldc + x % N];
    double err = std::fabs(got - e[x]) / (2e-5 * (std::fabs(e[x]) + mean_abs) + 1e-30);
    if (!(err == err)) err = INFINITY;
    if (err > worst) {
      worst = err;
      worst_at = x;
    }
  }
  bool guards = true;
  for (int64_t g = 0; g < kGuard; g++) guards = guards && buf[g] == kGuardWord && buf[buf.size() - 1 - g] == kGuardWord;
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = N; j < ldc; j++) guards = guards && buf[kGuard + i * ldc + j] == kGuardWord;
  char detail[256];
  std::snprintf(detail, sizeof detail, "worst %.4g of tolerance at (%lld,%lld): got %.9g, want %.9g%s", worst,
                static_cast<long long>(worst_at / N), static_cast<long long>(worst_at % N),
                double(c[(worst_at / N) * ldc + worst_at % N]), e[worst_at],
                guards ? "" : "; wrote outside C");
  report("gemm", label, worst <= 1.0 && guards, detail);
}

void gemm_cases(GemmFn<float> fn, GemmFn<uint16_t> fn_bf16, const char* layer) {
  Rng rng(16u);
  const Blocks fixed{512, 96, 1024, "512,96,1024"}, small{64, 32, 64, "64,32,64"}, odd{70, 40, 100, "70,40,100"};
  // every transposition and accumulate flag on shapes off the tiles, with both blocks
  const int64_t shapes[][3] = {{1, 1, 1}, {15, 17, 31}, {33, 47, 65}, {32, 32, 32}, {64, 96, 64}, {50, 70, 129}};
  for (const auto& s : shapes)
    for (const Blocks* blk : {&fixed, &small})
      for (int t = 0; t < 4; t++)
        for (bool acc : {false, true}) gemm_case(fn, layer, rng, *blk, s[0], s[1], s[2], t & 1, t & 2, acc);
  // past each fixed block once: K past KC twice, M past MC, N past NC
  gemm_case(fn, layer, rng, fixed, 45, 70, 1100, false, true, true);
  gemm_case(fn, layer, rng, fixed, 45, 70, 1100, true, false, false);
  gemm_case(fn, layer, rng, fixed, 200, 33, 97, false, true, false);
  gemm_case(fn, layer, rng, fixed, 200, 33, 97, true, true, true);
  gemm_case(fn, layer, rng, fixed, 20, 1050, 40, false, false, true);
  gemm_case(fn, layer, rng, fixed, 20, 1050, 40, false, true, false);
  // blocks that are not multiples of 32, crossed many times
  gemm_case(fn, layer, rng, odd, 100, 130, 201, false, true, true);
  gemm_case(fn, layer, rng, odd, 100, 130, 201, true, false, false);
  // K = 0: C written with zeros or left alone
  for (bool acc : {false, true}) gemm_case(fn, layer, rng, small, 5, 7, 0, false, false, acc);
  // B a weight held as bf16 bits (the bf16-weight kernels): forward (B stored transposed) and backward (row-major)
  for (const auto& s : shapes)
    for (bool transB : {false, true})
      for (bool acc : {false, true}) gemm_case(fn_bf16, layer, rng, small, s[0], s[1], s[2], false, transB, acc);
  gemm_case(fn_bf16, layer, rng, fixed, 45, 1050, 1100, false, true, true);
  gemm_case(fn_bf16, layer, rng, odd, 100, 130, 201, true, false, false);
}

template <class Tiles, class TB>
void gemm_with(float* c, int64_t ldc, const float* a, int64_t ars, int64_t acs, const TB* b, int64_t brs,
               int64_t bcs, int64_t M, int64_t N, int64_t K, bool acc, int64_t kc, int64_t mc, int64_t nc) {
  orpo::amx::gemm<Tiles, TB>(c, ldc, a, ars, acs, b, brs, bcs, M, N, K, acc, kc, mc, nc);
}

template <class Tiles>
void self_check_case(const char* layer) {
  const orpo::amx::CheckResult r = orpo::amx::self_check<Tiles>();
  char detail[200];
  std::snprintf(detail, sizeof detail, "worst %.4g of tolerance (%s, %lld,%lld: got %.9g, want %.9g)", r.worst, r.layout,
                static_cast<long long>(r.i), static_cast<long long>(r.j), r.got, r.want);
  report("self_check", layer, r.ok, detail);
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; i++) {
    const std::string arg = argv[i];
    if (arg == "--filter" && i + 1 < argc) {
      filter = argv[++i];
    } else {
      std::fprintf(stderr, "usage: amx [--filter SUBSTRING]\n");
      return 2;
    }
  }
  unit_checks<orpo::amx::TilesEmu>("emulated");
  self_check_case<orpo::amx::TilesEmu>("emulated");
  gemm_cases(&gemm_with<orpo::amx::TilesEmu, float>, &gemm_with<orpo::amx::TilesEmu, uint16_t>, "emulated");
  const bool hw = orpo::amx::hardware(), emulated = orpo::amx::emulated();
#if ORPO_AMX_HW
  // the instruction itself: the emulation's reading of the pseudocode against the silicon
  if (hw && !emulated) unit_checks<orpo::amx::TilesHw>("hardware");
  if (hw && !emulated) self_check_case<orpo::amx::TilesHw>("hardware");
#endif
  // the addon's own build (amx.cc): its start-up check and its GEMM entry points, on the instruction where this CPU has
  // it, else on the emulation when amx.cc was built with -DORPO_AMX_EMULATE
  if (hw) {
    const char* layer = emulated ? "addon-emulated" : "hardware";
    report("usable", layer, orpo::amx::usable(), "amx::usable() after the start-up check");
    gemm_cases(&orpo::amx::gemm_serial, &orpo::amx::gemm_serial, layer);
  }
  std::printf("{\"summary\":true,\"break\":%d,\"hardware\":%s,\"emulated\":%s,\"checks\":%lld,\"failures\":%lld}\n",
              ORPO_AMX_TEST_BREAK, hw && !emulated ? "true" : "false", emulated ? "true" : "false",
              static_cast<long long>(totals.checks), static_cast<long long>(totals.failures));
  return totals.failures ? 1 : 0;
}
