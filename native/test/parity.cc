// The kernel parity harness: runs every kernel of the table in native/kernels.h on seeded random inputs and checks
// each output against a plain scalar float64 reference computed here, so that a build nobody can load into Node
// (the NEON build, run under qemu-aarch64) is held to the same truth as the generic x86 build. See native/README.md
// ("How the NEON kernels are tested") and test/native-arm64.test.ts, which builds it both ways and compares.
//
// Sizes are odd on purpose: M, N, K, C, T, V that are not multiples of any vector width (4, 8, 16), of the
// micro-tiles (NEON 8x12, portable 4x8) or of the cache blocks (the fixed KC 256, MC 128, NC 1020/1024, which the
// harness sets whatever the machine's caches, and small blocks that every GEMM shape crosses), plus cases that
// cross each block once, strided q/k/v views, grouped-query heads, hidden key ranges, accumulate flags, bf16 matmul
// mode and aliased outputs. Every case runs at 1 and at 3 threads; the results must not depend on the thread count
// (except sum_squares, whose float64 partial sums follow the thread split).
//
// Output: one JSON line per (case, thread count, output buffer) on stdout, then a summary line; exit status 1 when
// any check fails. With --dump FILE every output's final contents are appended to FILE (raw 32-bit words, in line
// order; the line's "offset" and "words" locate them) so two builds can be compared element by element.
//
// Build: any C++17 compiler, with this file, ../isa_generic.cc, ../pool.cc and ../cpu.cc (see the test for the exact
// flags).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "../kernels.h"
#include "harness.h"
#include "../pool.h"

namespace {

// The generic table (the NEON one when built for aarch64); -DPARITY_TABLE=kernels_avx2 (linking isa_avx2.cc built with
// its binding.gyp flags) checks another table the same way.
#ifndef PARITY_TABLE
#define PARITY_TABLE kernels_generic
#endif
const orpo::KernelTable& kern = orpo::PARITY_TABLE;

// ------------------------------------------------------------------------------------------------ inputs

using harness::Rng;

std::vector<double> widen(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

using harness::bf16_round;

// ------------------------------------------------------------------------------------------------ checks

enum class Type { kF32, kI32, kF64 };

/**
 * How an output is compared with its float64 truth e:
 *   exact: the float32 nearest e, bit for bit. For kernels that do one correctly rounded operation per element
 *     (a copy, a + b, x * s), which IEEE arithmetic makes identical on every CPU.
 *   rtol: |got - e| <= rtol * (|e| + mean|e|): relative where values are large, relative to the output's typical
 *     size where float32 cancellation leaves a value small (the rule of test/native-parity.test.ts).
 */
struct Tol {
  double rtol;
  bool exact;
};
constexpr Tol kExact{0.0, true};
// float32 sums of up to ~1,100 terms, summed in another order than the reference (blocked, FMA or not): the error
// grows like sqrt(K) eps |terms| ~ 2e-6 of the output scale at K = 1,100; 2e-5 (~170 eps) leaves room for the worst
// elements, and stays 50x tighter than a single wrong or missing term of K ~ 100 random products.
constexpr Tol kSum{2e-5, false};
// backward passes that subtract nearly equal row statistics (norms) or chain two products through softmax
// (attention): one more level of cancellation, as in test/native-parity.test.ts
constexpr Tol kSumBackward{5e-5, false};
// pointwise maps of a few float32 operations, some through exp_approx (about 2 ulp), and row reductions of one
// float32 pass: a handful of roundings
constexpr Tol kPointwise{1e-5, false};
// float64 sums rounded once to float32 (logits_stats' mean): the float32 rounding is all that remains
constexpr Tol kRounded{1e-6, false};
// float64 results of float64 sums (sum_squares): summation order only
constexpr Tol kFloat64{1e-12, false};

struct Out {
  std::string name;
  Type type;
  std::vector<uint32_t> init;  // contents before the call (accumulated outputs add to these), raw words
  std::vector<double> expect;  // the float64 truth after the call, one per element
  Tol tol;
};

Out f32_out(const std::string& name, const std::vector<float>& init, std::vector<double> expect, Tol tol) {
  Out o{name, Type::kF32, std::vector<uint32_t>(init.size()), std::move(expect), tol};
  std::memcpy(o.init.data(), init.data(), init.size() * 4);
  return o;
}

Out i32_out(const std::string& name, int64_t n, std::vector<double> expect) {
  return Out{name, Type::kI32, std::vector<uint32_t>(static_cast<size_t>(n), 0xdeadbeefu), std::move(expect), kExact};
}

Out f64_out(const std::string& name, std::vector<double> expect, Tol tol) {
  return Out{name, Type::kF64, std::vector<uint32_t>(expect.size() * 2, 0u), std::move(expect), tol};
}

/**
 * An output buffer with guard words on both sides: a kernel writing past its output (a vector store of a tile edge)
 * changes a guard. The guard count is odd, so the output starts at an address no vector width divides.
 */
class Guarded {
 public:
  static constexpr int64_t kGuard = 17;
  static constexpr uint32_t kGuardWord = 0x7fc0beefu;  // a quiet NaN with a payload no kernel produces

  explicit Guarded(const std::vector<uint32_t>& init) : n_(static_cast<int64_t>(init.size())) {
    mem_ = static_cast<uint32_t*>(std::malloc(static_cast<size_t>(n_ + 2 * kGuard) * 4));
    for (int64_t i = 0; i < kGuard; i++) mem_[i] = mem_[kGuard + n_ + i] = kGuardWord;
    if (n_) std::memcpy(mem_ + kGuard, init.data(), static_cast<size_t>(n_) * 4);
  }
  Guarded(const Guarded&) = delete;
  Guarded& operator=(const Guarded&) = delete;
  ~Guarded() { std::free(mem_); }

  void* data() { return mem_ + kGuard; }
  const uint32_t* words() const { return mem_ + kGuard; }
  bool guards_intact() const {
    for (int64_t i = 0; i < kGuard; i++)
      if (mem_[i] != kGuardWord || mem_[kGuard + n_ + i] != kGuardWord) return false;
    return true;
  }

 private:
  uint32_t* mem_;
  int64_t n_;
};

/** The output buffers of one call, in the order the case listed them */
class Bufs {
 public:
  explicit Bufs(const std::vector<Out>& outs) {
    for (const Out& o : outs) bufs_.push_back(new Guarded(o.init));
  }
  ~Bufs() {
    for (Guarded* b : bufs_) delete b;
  }
  float* f(size_t i) { return static_cast<float*>(bufs_[i]->data()); }
  int32_t* i32(size_t i) { return static_cast<int32_t*>(bufs_[i]->data()); }
  void* raw(size_t i) { return bufs_[i]->data(); }  // float64 outputs: 4-byte aligned, so written with memcpy
  const Guarded& at(size_t i) const { return *bufs_[i]; }

 private:
  std::vector<Guarded*> bufs_;
};

struct Totals {
  int64_t cases = 0, checks = 0, failures = 0, words = 0;
};
Totals totals;
FILE* dump = nullptr;
const char* filter = nullptr;

double element(const uint32_t* w, Type type, int64_t i) {
  if (type == Type::kI32) return double(static_cast<int32_t>(w[i]));
  if (type == Type::kF64) {
    double d;
    std::memcpy(&d, w + 2 * i, 8);
    return d;
  }
  float f;
  std::memcpy(&f, w + i, 4);
  return double(f);
}

/** the worst |got - e| / tolerance over the output (<= 1 passes); index of that element in `worst_at` */
double worst_error(const uint32_t* w, const Out& o, int64_t* worst_at) {
  const int64_t n = static_cast<int64_t>(o.expect.size());
  double mean_abs = 0.0;
  for (double e : o.expect)
    if (std::isfinite(e)) mean_abs += std::fabs(e);
  mean_abs = n ? mean_abs / double(n) : 0.0;
  double worst = 0.0;
  *worst_at = -1;
  for (int64_t i = 0; i < n; i++) {
    const double e = o.expect[i];
    const double got = element(w, o.type, i);
    double err;
    if (!std::isfinite(e)) {  // -inf means of masked rows: only the same value will do
      err = got == e ? 0.0 : INFINITY;
    } else if (o.tol.exact) {
      const double want = o.type == Type::kF32 ? double(float(e)) : e;
      err = got == want ? 0.0 : INFINITY;
    } else {
      const double tol = o.tol.rtol * (std::fabs(e) + mean_abs) + 1e-30;
      err = std::fabs(got - e) / tol;
      if (!(err == err)) err = INFINITY;  // NaN
    }
    if (err > worst || *worst_at < 0) {
      worst = err;
      *worst_at = i;
    }
  }
  return worst;
}

uint64_t fnv1a(const uint32_t* w, int64_t words) {
  uint64_t h = 1469598103934665603ull;
  const auto* bytes = reinterpret_cast<const unsigned char*>(w);
  for (int64_t i = 0; i < words * 4; i++) h = (h ^ bytes[i]) * 1099511628211ull;
  return h;
}

std::string number(double x) {
  char s[32];
  std::snprintf(s, sizeof s, "%.3g", x);
  return s;
}

using harness::json_string;

/**
 * Runs `call` once per thread count on fresh guarded copies of the outputs and checks every output: guards intact,
 * within tolerance of its float64 truth, and (when `thread_invariant`) the same bits at every thread count.
 */
void run_case(const std::string& kernel, const std::string& label, const std::vector<Out>& outs,
              const std::function<void(Bufs&)>& call, bool thread_invariant = true) {
  if (filter && (kernel + " " + label).find(filter) == std::string::npos) return;
  totals.cases++;
  std::vector<uint64_t> first_hash(outs.size());
  for (int threads : {1, 3}) {
    orpo::pool_set_threads(threads);
    Bufs bufs(outs);
    call(bufs);
    orpo::set_matmul_bf16(false);  // a case that turned it on must not leak it into the next
    for (size_t i = 0; i < outs.size(); i++) {
      const Out& o = outs[i];
      const int64_t words = static_cast<int64_t>(o.init.size());
      const uint32_t* w = bufs.at(i).words();
      int64_t worst_at;
      const double worst = worst_error(w, o, &worst_at);
      const uint64_t hash = fnv1a(w, words);
      std::string problem;
      if (!bufs.at(i).guards_intact()) problem = "wrote outside the output";
      else if (!(worst <= 1.0)) problem = "outside tolerance";
      else if (threads != 1 && thread_invariant && hash != first_hash[i]) problem = "differs from the 1-thread result";
      if (threads == 1) first_hash[i] = hash;
      totals.checks++;
      if (!problem.empty()) totals.failures++;
      char head[512];
      std::snprintf(head, sizeof head,
                    "{\"kernel\":%s,\"case\":%s,\"threads\":%d,\"output\":%s,\"type\":\"%s\",\"n\":%zu,"
                    "\"tol\":%s,\"worst\":%.4g,\"worstAt\":%lld,",
                    json_string(kernel).c_str(), json_string(label).c_str(), threads, json_string(o.name).c_str(),
                    o.type == Type::kF32 ? "f32" : o.type == Type::kI32 ? "i32" : "f64", o.expect.size(),
                    o.tol.exact ? "\"exact\"" : number(o.tol.rtol).c_str(), std::isfinite(worst) ? worst : 1e308,
                    static_cast<long long>(worst_at));
      std::string line = head;
      if (worst_at >= 0) {
        char detail[160];
        std::snprintf(detail, sizeof detail, "\"got\":%.9g,\"expected\":%.9g,", element(w, o.type, worst_at),
                      o.expect[worst_at]);
        line += detail;
      }
      char tail[160];
      std::snprintf(tail, sizeof tail, "\"hash\":\"%016llx\",\"offset\":%lld,\"words\":%lld,\"ok\":%s", 
                    static_cast<unsigned long long>(hash), static_cast<long long>(totals.words),
                    static_cast<long long>(words), problem.empty() ? "true" : "false");
      line += tail;
      if (!problem.empty()) line += ",\"problem\":" + json_string(problem);
      std::printf("%s}\n", line.c_str());
      if (dump && words) std::fwrite(w, 4, static_cast<size_t>(words), dump);
      totals.words += words;
    }
  }
}

std::string sizes(std::initializer_list<std::pair<const char*, int64_t>> named) {
  std::string s;
  for (const auto& [name, value] : named) s += (s.empty() ? "" : " ") + std::string(name) + std::to_string(value);
  return s;
}

// ------------------------------------------------------------------------------------------------ GEMM

/** c (M,N) [+]= op(a) @ op(b) in float64; bf16 rounds the operands first */
std::vector<double> gemm_reference(const std::vector<float>& c, const std::vector<float>& a, const std::vector<float>& b,
                                   int64_t M, int64_t N, int64_t K, bool transA, bool transB, bool accumulate,
                                   bool bf16) {
  std::vector<double> ra(a.size()), rb(b.size());
  for (size_t i = 0; i < a.size(); i++) ra[i] = bf16 ? bf16_round(a[i]) : a[i];
  for (size_t i = 0; i < b.size(); i++) rb[i] = bf16 ? bf16_round(b[i]) : b[i];
  std::vector<double> e(static_cast<size_t>(M * N));
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) {
      double s = accumulate ? c[i * N + j] : 0.0;
      for (int64_t k = 0; k < K; k++) s += ra[transA ? k * M + i : i * K + k] * rb[transB ? j * K + k : k * N + j];
      e[i * N + j] = s;
    }
  return e;
}

void gemm_case(Rng& rng, int64_t M, int64_t N, int64_t K, bool transA, bool transB, bool accumulate, bool bf16 = false) {
  const auto a = rng.floats(M * K), b = rng.floats(K * N), c = rng.floats(M * N);
  const std::string label = sizes({{"M", M}, {"N", N}, {"K", K}}) + " tA=" + std::to_string(transA) +
                            " tB=" + std::to_string(transB) + " acc=" + std::to_string(accumulate) + (bf16 ? " bf16" : "");
  // K = 0 writes zeros or leaves c as it was: exact
  const Tol tol = K == 0 ? kExact : kSum;
  run_case("gemm", label, {f32_out("c", c, gemm_reference(c, a, b, M, N, K, transA, transB, accumulate, bf16), tol)},
           [&](Bufs& o) {
             orpo::set_matmul_bf16(bf16);
             kern.gemm(o.f(0), a.data(), b.data(), M, N, K, transA, transB, accumulate);
           });
}

/** a check line with no output buffer: `what` either holds (ok) or is the problem */
void plain_check(const char* kernel, const char* label, bool ok, const std::string& detail) {
  if (filter && (std::string(kernel) + " " + label).find(filter) == std::string::npos) return;
  totals.cases++, totals.checks++;
  if (!ok) totals.failures++;
  std::printf("{\"kernel\":%s,\"case\":%s,\"threads\":1,\"output\":\"info\",\"type\":\"f64\",\"n\":0,"
              "\"tol\":\"positive\",\"detail\":%s,\"words\":0,\"ok\":%s%s}\n",
              json_string(kernel).c_str(), json_string(label).c_str(), json_string(detail).c_str(), ok ? "true" : "false",
              ok ? "" : (",\"problem\":" + json_string(detail)).c_str());
}

void gemm_config_failure(const char* what) { plain_check("gemm_configure", "small blocks", false, what); }

/**
 * gemm_info reports a usable plan (blocks that are multiples of the micro-tile, a bf16 path this table has, positive
 * probe rates) and gemm_configure takes what it documents and refuses the rest, changing nothing then.
 */
void gemm_config_cases() {
  orpo::pool_set_threads(1);
  orpo::GemmInfo g{};
  kern.gemm_info(&g);
  const bool is_dp = std::strcmp(g.bf16_kernel, "dpbf16") == 0, is_amx = std::strcmp(g.bf16_kernel, "amx") == 0;
  const bool info_ok = g.mr > 0 && g.nr > 0 && g.kc > 0 && g.mc > 0 && g.nc > 0 && g.mc % g.mr == 0 &&
                       g.nc % g.nr == 0 && (is_dp || is_amx || std::strcmp(g.bf16_kernel, "fma") == 0) &&
                       (!is_dp || g.dpbf16) && (!is_amx || g.amx) && g.probe_f32 > 0 && g.probe_fma > 0 &&
                       (g.probe_dpbf16 > 0) == g.dpbf16 && (g.probe_amx > 0) == g.amx && g.blocks && g.bf16_source;
  char detail[300];
  std::snprintf(detail, sizeof detail, "MR %lld NR %lld KC %lld MC %lld NC %lld (%s), bf16 %s (%s), probe %.1f/%.1f/%.1f",
                static_cast<long long>(g.mr), static_cast<long long>(g.nr), static_cast<long long>(g.kc),
                static_cast<long long>(g.mc), static_cast<long long>(g.nc), g.blocks, g.bf16_kernel, g.bf16_source,
                g.probe_f32, g.probe_fma, g.probe_dpbf16);
  plain_check("gemm_info", "plan", info_ok, detail);

  const char* bad_blocks[] = {"0,24,64", "512,96", "x", "512,96,1024,7x", "", "99999999,1,1"};
  bool refused = true;
  for (const char* b : bad_blocks) refused = refused && !kern.gemm_configure(nullptr, b);
  refused = refused && !kern.gemm_configure("sometimes", nullptr) && !kern.gemm_configure("fma", "bad");
  if (!g.dpbf16) refused = refused && !kern.gemm_configure("dpbf16", nullptr);
  if (!g.amx) refused = refused && !kern.gemm_configure("amx", nullptr);
  orpo::GemmInfo after{};
  kern.gemm_info(&after);
  const bool unchanged = after.kc == g.kc && after.mc == g.mc && after.nc == g.nc &&
                         std::strcmp(after.bf16_kernel, g.bf16_kernel) == 0;
  plain_check("gemm_configure", "refuses invalid values", refused && unchanged,
              !refused ? "accepted an invalid value" : unchanged ? "ok" : "a refused value changed the plan");

  bool set_ok = kern.gemm_configure("fma", "48,36,96");
  orpo::GemmInfo set{};
  kern.gemm_info(&set);
  set_ok = set_ok && set.kc == 48 && set.mc == 36 / set.mr * set.mr && set.nc == 96 / set.nr * set.nr &&
           std::strcmp(set.bf16_kernel, "fma") == 0 && std::strcmp(set.bf16_source, "set") == 0;
  set_ok = set_ok && kern.gemm_configure("auto", "fixed");
  orpo::GemmInfo back{};
  kern.gemm_info(&back);
  // "auto" is the probe's choice (which an ORPO_BF16_KERNEL the process started with may have overridden)
  const char* probes = "fma";
  double fastest = back.probe_fma;
  if (back.dpbf16 && back.probe_dpbf16 > fastest) probes = "dpbf16", fastest = back.probe_dpbf16;
  if (back.amx && back.probe_amx > fastest) probes = "amx";
  set_ok = set_ok && std::strcmp(back.blocks, "fixed") == 0 && std::strcmp(back.bf16_kernel, probes) == 0 &&
           std::strcmp(back.bf16_source, back.dpbf16 || back.amx ? "probe" : "only") == 0;
  plain_check("gemm_configure", "sets and restores", set_ok, set_ok ? "ok" : "the plan did not follow");
}

void gemm_cases() {
  Rng rng(101);
  // odd shapes on every path: 1..4 rows (B read in place, row-major and transposed, 4-wide dot products and their
  // tail), edge tiles in both directions, K = 0, K past one KC block, K = 1024 (a row stride of 4 KiB: A packed, not
  // read in place)
  const int64_t shapes[][3] = {{1, 1, 1},   {7, 63, 65},   {63, 65, 127}, {127, 7, 1},  {65, 127, 63}, {33, 129, 300},
                               {5, 3, 0},   {1, 300, 70},  {3, 65, 127},  {4, 37, 29},  {2, 5, 3},     {9, 13, 1024},
                               {13, 25, 9}, {17, 11, 258}};
  for (const auto& s : shapes)
    for (bool transA : {false, true})
      for (bool transB : {false, true})
        for (bool accumulate : {false, true}) gemm_case(rng, s[0], s[1], s[2], transA, transB, accumulate);
  // past one cache block in every dimension (M > MC, N > NC, K > KC), split into row or column strips by threads
  for (bool transA : {false, true}) gemm_case(rng, 150, 1100, 300, transA, !transA, true);
  // a transposed A whose column stride is 4 KiB (packed rather than read in place)
  gemm_case(rng, 1024, 5, 3, true, false, false);
  // a long reduction into a small C: K cut into two fixed halves, the second summed into a buffer
  for (bool transA : {false, true})
    for (bool transB : {false, true}) gemm_case(rng, 33, 37, 900, transA, transB, transA);
  // bf16 matmul mode: operands rounded to bfloat16 while packed, float32 sums (also with 1..4 rows: packed then)
  const int64_t bf16_shapes[][3] = {{1, 1, 1}, {3, 65, 127}, {7, 63, 65}, {33, 129, 300}, {21, 1030, 260}};
  for (const auto& s : bf16_shapes)
    for (bool transA : {false, true})
      for (bool transB : {false, true}) gemm_case(rng, s[0], s[1], s[2], transA, transB, true, true);
  // blocks a CPU's caches could give, small enough that every shape crosses several of them: KC 37 (odd: the last
  // bf16 pair of each block is half empty; not a multiple of the 16-deep transposes), MC 24, NC 64 (60 for NEON's
  // 12-wide slivers). Each bf16 path the table has runs them too.
  const bool small_blocks = kern.gemm_configure(nullptr, "37,24,64");
  const int64_t block_shapes[][3] = {{50, 130, 100}, {7, 200, 75}, {97, 33, 38}};
  const char* paths[] = {"fma", "dpbf16", "amx"};
  for (const auto& s : block_shapes)
    for (bool transA : {false, true})
      for (bool transB : {false, true}) {
        gemm_case(rng, s[0], s[1], s[2], transA, transB, transA != transB);
        for (const char* path : paths)
          if (kern.gemm_configure(path, nullptr)) gemm_case(rng, s[0], s[1], s[2], transA, transB, true, true);
      }
  kern.gemm_configure("auto", "fixed");
  if (!small_blocks) gemm_config_failure("gemm_configure refused the blocks 37,24,64");
}

/** matmul_forward's float64 reference: inp @ weight^T added to the bias rows (copied, not rounded), or written */
std::vector<double> matmul_forward_reference(const std::vector<float>& inp, const std::vector<float>& weight,
                                             const std::vector<float>& bias, int64_t N, int64_t C, int64_t OC,
                                             bool with_bias, bool bf16) {
  std::vector<float> bias_rows(static_cast<size_t>(N * OC));
  for (int64_t n = 0; n < N; n++) std::memcpy(&bias_rows[n * OC], bias.data(), static_cast<size_t>(OC) * 4);
  return gemm_reference(bias_rows, inp, weight, N, OC, C, false, true, with_bias, bf16);
}

void matmul_cases() {
  Rng rng(202);
  const int64_t shapes[][3] = {{1, 1, 1}, {1, 65, 300}, {7, 65, 63}, {65, 127, 7}, {130, 64, 96}};
  for (bool bf16 : {false, true})
    for (const auto& s : shapes) {
      const int64_t N = s[0], C = s[1], OC = s[2];
      const auto inp = rng.floats(N * C), weight = rng.floats(OC * C), bias = rng.floats(OC);
      const std::string shape = sizes({{"N", N}, {"C", C}, {"OC", OC}}) + (bf16 ? " bf16" : "");
      for (bool with_bias : {true, false}) {
        const auto out = rng.floats(N * OC);
        const auto e = matmul_forward_reference(inp, weight, bias, N, C, OC, with_bias, bf16);
        run_case("matmul_forward", shape + " bias=" + std::to_string(with_bias), {f32_out("out", out, e, kSum)},
                 [&](Bufs& o) {
                   orpo::set_matmul_bf16(bf16);
                   kern.matmul_forward(o.f(0), inp.data(), weight.data(), with_bias ? bias.data() : nullptr, N, C, OC);
                 });
      }
      const auto dout = rng.floats(N * OC);
      // every combination of null gradient outputs (bit 2: dinp, 1: dweight, 0: dbias); bit 3: dinp written
      for (int mask : {7, 3, 5, 6, 1, 8 | 7, 8 | 4}) {
        if (bf16 && (mask & 7) != 7) continue;
        const bool acc = !(mask & 8);
        const auto dinp = rng.floats(N * C), dweight = rng.floats(OC * C), dbias = rng.floats(OC);
        std::vector<Out> outs;
        if (mask & 4)  // dinp += dout @ weight, or = (its initial values must be gone)
          outs.push_back(f32_out("dinp", dinp, gemm_reference(dinp, dout, weight, N, C, OC, false, false, acc, bf16), kSum));
        if (mask & 2)  // dweight += dout^T @ inp
          outs.push_back(
              f32_out("dweight", dweight, gemm_reference(dweight, dout, inp, OC, C, N, true, false, true, bf16), kSum));
        if (mask & 1) {
          auto e = widen(dbias);  // column sums of dout: not a matrix product, never rounded
          for (int64_t n = 0; n < N; n++)
            for (int64_t o = 0; o < OC; o++) e[o] += dout[n * OC + o];
          outs.push_back(f32_out("dbias", dbias, e, kSum));
        }
        run_case("matmul_backward", shape + " mask=" + std::to_string(mask), outs, [&](Bufs& o) {
          size_t next = 0;
          float* pdinp = mask & 4 ? o.f(next++) : nullptr;
          float* pdweight = mask & 2 ? o.f(next++) : nullptr;
          float* pdbias = mask & 1 ? o.f(next++) : nullptr;
          orpo::set_matmul_bf16(bf16);
          kern.matmul_backward(pdinp, pdweight, pdbias, dout.data(), inp.data(), weight.data(), N, C, OC, acc);
        });
      }
    }
}

// ------------------------------------------------------------------------------------------------ bf16 weights

/** n random bfloat16 bit patterns (odd n: the kernels get exactly n values) and their float values */
void bf16_weight(Rng& rng, int64_t n, std::vector<uint16_t>* bits, std::vector<float>* wide) {
  const auto x = rng.floats(n);
  bits->resize(static_cast<size_t>(n));
  wide->resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i++) {
    const float r = bf16_round(x[i]);
    uint32_t u;
    std::memcpy(&u, &r, 4);
    (*bits)[i] = static_cast<uint16_t>(u >> 16);
    (*wide)[i] = r;
  }
}

/**
 * matmul_forward_bf16 / matmul_backward_bf16: bf16 products (the float operand rounded, the weight exact) whatever
 * matmul_bf16() says, so the reference is bf16 mode's on the widened weight. 1..4 rows take the decode path (the
 * weight read in place); the rest the packed one, on each bf16 path the table has, with the fixed blocks and small
 * ones (KC 37: odd, so each block's last pair is half empty).
 */
void bf16_weight_matmul_cases() {
  Rng rng(252);
  const int64_t shapes[][3] = {{1, 1, 1}, {1, 65, 300}, {2, 7, 33}, {3, 65, 127}, {4, 130, 97},
                               {7, 65, 63}, {65, 127, 7}, {33, 129, 300}, {50, 301, 130}};
  const char* blocks[] = {"fixed", "37,24,64"};
  const char* paths[] = {"fma", "dpbf16", "amx"};
  for (const char* blk : blocks)
    for (const char* path : paths) {
      if (!kern.gemm_configure(path, blk)) continue;  // dpbf16: AVX-512 with VDPBF16PS only
      for (const auto& s : shapes) {
        const int64_t N = s[0], C = s[1], OC = s[2];
        if (std::strcmp(blk, "fixed") != 0 && N <= 4) continue;  // decoding uses no blocks
        std::vector<uint16_t> w;
        std::vector<float> wide;
        bf16_weight(rng, OC * C, &w, &wide);
        const auto inp = rng.floats(N * C), bias = rng.floats(OC), dout = rng.floats(N * OC);
        const std::string shape = sizes({{"N", N}, {"C", C}, {"OC", OC}}) + " " + path + " blocks " + blk;
        for (bool with_bias : {true, false}) {
          const auto out = rng.floats(N * OC);
          const auto e = matmul_forward_reference(inp, wide, bias, N, C, OC, with_bias, true);
          run_case("matmul_forward_bf16", shape + " bias=" + std::to_string(with_bias), {f32_out("out", out, e, kSum)},
                   [&](Bufs& o) {
                     kern.matmul_forward_bf16(o.f(0), inp.data(), w.data(), with_bias ? bias.data() : nullptr, N, C, OC);
                   });
        }
        const auto dinp = rng.floats(N * C);
        for (bool acc : {true, false})
          run_case("matmul_backward_bf16", shape + (acc ? "" : " written"),
                   {f32_out("dinp", dinp, gemm_reference(dinp, dout, wide, N, C, OC, false, false, acc, true), kSum)},
                   [&](Bufs& o) { kern.matmul_backward_bf16(o.f(0), dout.data(), w.data(), N, C, OC, acc); });
      }
    }
  kern.gemm_configure("auto", "fixed");
}

// ------------------------------------------------------------------------------------------------ embeddings

void embedding_cases() {
  Rng rng(303);
  const int64_t shapes[][3] = {{1, 1, 1}, {7, 63, 3}, {127, 65, 50}, {300, 200, 7}};
  for (const auto& s : shapes) {
    const int64_t N = s[0], C = s[1], V = s[2];
    const auto ids = rng.ints(N, 0, static_cast<int32_t>(V));
    const auto table = rng.floats(V * C);
    const std::string shape = sizes({{"N", N}, {"C", C}, {"V", V}});
    // out's rows = the table's rows of ids (float32, or a bf16 table widened), added to out's values or written
    auto lookup = [&](const std::vector<float>& out, const std::vector<float>& rows, bool accumulate) {
      std::vector<double> e(static_cast<size_t>(N * C));
      for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) e[n * C + c] = (accumulate ? double(out[n * C + c]) : 0.0) + rows[ids[n] * C + c];
      return e;
    };
    for (bool accumulate : {false, true}) {
      const auto out = rng.floats(N * C);
      const auto e = lookup(out, table, accumulate);
      run_case("embedding_forward", shape + " acc=" + std::to_string(accumulate), {f32_out("out", out, e, kExact)},
               [&](Bufs& o) { kern.embedding_forward(o.f(0), ids.data(), table.data(), N, C, accumulate); });
    }
    const auto dout = rng.floats(N * C), dtable = rng.floats(V * C);
    auto e = widen(dtable);
    for (int64_t n = 0; n < N; n++)
      for (int64_t c = 0; c < C; c++) e[ids[n] * C + c] += dout[n * C + c];
    run_case("embedding_backward", shape + " (repeated ids)", {f32_out("dtable", dtable, e, kPointwise)},
             [&](Bufs& o) { kern.embedding_backward(o.f(0), dout.data(), ids.data(), N, C); });
    // a bf16 table (odd V * C: an odd number of values), widened exactly
    std::vector<uint16_t> bits;
    std::vector<float> wide;
    bf16_weight(rng, V * C, &bits, &wide);
    for (bool accumulate : {false, true}) {
      const auto out = rng.floats(N * C);
      const auto eb = lookup(out, wide, accumulate);
      run_case("embedding_forward_bf16", shape + " acc=" + std::to_string(accumulate), {f32_out("out", out, eb, kExact)},
               [&](Bufs& o) { kern.embedding_forward_bf16(o.f(0), ids.data(), bits.data(), N, C, accumulate); });
    }
  }
}

// ------------------------------------------------------------------------------------------------ norms

void norm_cases() {
  Rng rng(404);
  // N 300: several 64-row blocks of the backward's weight-gradient partials per task, and several tasks
  for (int64_t N : {1, 7, 65, 127, 300})
    for (int64_t C : {1, 7, 64, 127, 768}) {
      const std::string shape = sizes({{"N", N}, {"C", C}});
      const auto inp = rng.floats(N * C, 3.0), weight = rng.floats(C), bias = rng.floats(C), dout = rng.floats(N * C);
      // layernorm: the truth, and its mean / rstd rounded to float32 as the backward's inputs
      std::vector<double> y(static_cast<size_t>(N * C)), mean(N), rstd(N);
      std::vector<float> mean32(N), rstd32(N);
      for (int64_t n = 0; n < N; n++) {
        double m = 0, var = 0;
        for (int64_t c = 0; c < C; c++) m += inp[n * C + c];
        m /= double(C);
        for (int64_t c = 0; c < C; c++) var += (inp[n * C + c] - m) * (inp[n * C + c] - m);
        const double s = 1.0 / std::sqrt(var / double(C) + 1e-5);
        for (int64_t c = 0; c < C; c++) y[n * C + c] = (inp[n * C + c] - m) * s * weight[c] + bias[c];
        mean[n] = m, rstd[n] = s, mean32[n] = float(m), rstd32[n] = float(s);
      }
      run_case("layernorm_forward", shape,
               {f32_out("out", rng.floats(N * C), y, kPointwise), f32_out("mean", rng.floats(N), mean, kPointwise),
                f32_out("rstd", rng.floats(N), rstd, kPointwise)},
               [&](Bufs& o) {
                 kern.layernorm_forward(o.f(0), o.f(1), o.f(2), inp.data(), weight.data(), bias.data(), N, C, 1e-5f);
               });
      for (bool params : {true, false}) {
        const auto dinp = rng.floats(N * C), dweight = rng.floats(C), dbias = rng.floats(C);
        auto edinp = widen(dinp), edweight = widen(dweight), edbias = widen(dbias);
        for (int64_t n = 0; n < N; n++) {
          const double m = mean32[n], s = rstd32[n];
          double dnorm_mean = 0, dnorm_xhat_mean = 0;
          for (int64_t c = 0; c < C; c++) {
            const double dnorm = double(dout[n * C + c]) * weight[c];
            dnorm_mean += dnorm;
            dnorm_xhat_mean += dnorm * (inp[n * C + c] - m) * s;
          }
          dnorm_mean /= double(C), dnorm_xhat_mean /= double(C);
          for (int64_t c = 0; c < C; c++) {
            const double xhat = (inp[n * C + c] - m) * s;
            edinp[n * C + c] += s * (double(dout[n * C + c]) * weight[c] - dnorm_mean - xhat * dnorm_xhat_mean);
            edweight[c] += dout[n * C + c] * xhat;
            edbias[c] += dout[n * C + c];
          }
        }
        std::vector<Out> outs{f32_out("dinp", dinp, edinp, kSumBackward)};
        if (params) {
          outs.push_back(f32_out("dweight", dweight, edweight, kSumBackward));
          outs.push_back(f32_out("dbias", dbias, edbias, kSumBackward));
        }
        run_case("layernorm_backward", shape + " params=" + std::to_string(params), outs, [&](Bufs& o) {
          kern.layernorm_backward(o.f(0), params ? o.f(1) : nullptr, params ? o.f(2) : nullptr, dout.data(), inp.data(),
                                  weight.data(), mean32.data(), rstd32.data(), N, C);
        });
      }
      // rmsnorm
      std::vector<double> ry(static_cast<size_t>(N * C)), rrstd(N);
      std::vector<float> rrstd32(N);
      for (int64_t n = 0; n < N; n++) {
        double ss = 0;
        for (int64_t c = 0; c < C; c++) ss += double(inp[n * C + c]) * inp[n * C + c];
        const double s = 1.0 / std::sqrt(ss / double(C) + 1e-6);
        for (int64_t c = 0; c < C; c++) ry[n * C + c] = weight[c] * (inp[n * C + c] * s);
        rrstd[n] = s, rrstd32[n] = float(s);
      }
      run_case("rmsnorm_forward", shape,
               {f32_out("out", rng.floats(N * C), ry, kPointwise), f32_out("rstd", rng.floats(N), rrstd, kPointwise)},
               [&](Bufs& o) { kern.rmsnorm_forward(o.f(0), o.f(1), inp.data(), weight.data(), N, C, 1e-6f); });
      for (bool params : {true, false}) {
        const auto dinp = rng.floats(N * C), dweight = rng.floats(C);
        auto edinp = widen(dinp), edweight = widen(dweight);
        for (int64_t n = 0; n < N; n++) {
          const double s = rrstd32[n];
          double dot = 0;
          for (int64_t c = 0; c < C; c++) dot += double(dout[n * C + c]) * weight[c] * inp[n * C + c];
          const double k = dot / double(C) * s * s * s;
          for (int64_t c = 0; c < C; c++) {
            edinp[n * C + c] += s * double(dout[n * C + c]) * weight[c] - inp[n * C + c] * k;
            edweight[c] += double(dout[n * C + c]) * inp[n * C + c] * s;
          }
        }
        std::vector<Out> outs{f32_out("dinp", dinp, edinp, kSumBackward)};
        if (params) outs.push_back(f32_out("dweight", dweight, edweight, kSumBackward));
        run_case("rmsnorm_backward", shape + " params=" + std::to_string(params), outs, [&](Bufs& o) {
          kern.rmsnorm_backward(o.f(0), params ? o.f(1) : nullptr, dout.data(), inp.data(), weight.data(),
                                rrstd32.data(), N, C);
        });
      }
    }
}

// ------------------------------------------------------------------------------------------------ RoPE

void rope_cases() {
  Rng rng(505);
  const int64_t shapes[][5] = {{1, 1, 1, 2, 0}, {2, 7, 3, 16, 5}, {1, 65, 4, 64, 0}, {2, 33, 2, 130, 3}, {2, 40, 8, 64, 1}};
  for (const auto& s : shapes) {
    const int64_t B = s[0], T = s[1], H = s[2], HD = s[3], pos0 = s[4], half = HD / 2, n = B * T * H * HD;
    const std::string shape = sizes({{"B", B}, {"T", T}, {"H", H}, {"HD", HD}, {"pos0", pos0}});
    const int64_t P = pos0 + T + 2;
    const auto cosb = rng.floats(P * half), sinb = rng.floats(P * half), inp = rng.floats(n), dout = rng.floats(n);
    std::vector<double> y(static_cast<size_t>(n));
    auto edinp_init = rng.floats(n);
    auto edinp = widen(edinp_init);
    std::vector<double> wdinp(static_cast<size_t>(n));  // written: the rotation's transpose alone
    for (int64_t r = 0; r < B * T; r++) {
      const int64_t t = r % T;
      for (int64_t h = 0; h < H; h++)
        for (int64_t i = 0; i < half; i++) {
          const int64_t at = (r * H + h) * HD + i;
          const double c = cosb[(pos0 + t) * half + i], sn = sinb[(pos0 + t) * half + i];
          y[at] = inp[at] * c - inp[at + half] * sn;
          y[at + half] = inp[at + half] * c + inp[at] * sn;
          wdinp[at] = dout[at] * c + double(dout[at + half]) * sn;
          wdinp[at + half] = dout[at + half] * c - double(dout[at]) * sn;
          edinp[at] += wdinp[at];
          edinp[at + half] += wdinp[at + half];
        }
    }
    run_case("rope_forward", shape, {f32_out("out", rng.floats(n), y, kPointwise)}, [&](Bufs& o) {
      kern.rope_forward(o.f(0), inp.data(), cosb.data(), sinb.data(), B, T, H, HD, pos0);
    });
    run_case("rope_forward", shape + " in place", {f32_out("x", inp, y, kPointwise)}, [&](Bufs& o) {
      kern.rope_forward(o.f(0), o.f(0), cosb.data(), sinb.data(), B, T, H, HD, pos0);
    });
    run_case("rope_backward", shape, {f32_out("dinp", edinp_init, edinp, kPointwise)}, [&](Bufs& o) {
      kern.rope_backward(o.f(0), dout.data(), cosb.data(), sinb.data(), B, T, H, HD, pos0, true);
    });
    run_case("rope_backward", shape + " written", {f32_out("dinp", edinp_init, wdinp, kPointwise)}, [&](Bufs& o) {
      kern.rope_backward(o.f(0), dout.data(), cosb.data(), sinb.data(), B, T, H, HD, pos0, false);
    });
  }
}

// ------------------------------------------------------------------------------------------------ attention

/** whether query position qi sees key position j: causal, and not a hidden key ([lo, hi) hidden from qi >= hi) */
bool sees(const int32_t* hidden, int64_t b, int64_t qi, int64_t j) {
  if (j > qi) return false;
  return !(hidden && qi >= hidden[2 * b + 1] && j >= hidden[2 * b] && j < hidden[2 * b + 1]);
}

/**
 * Softmax attention in float64 for queries at positions pos0..pos0+T-1 over L = pos0 + T keys per batch row:
 * out (B,T,NH,HD), lse (B,NH,T)
 */
void attention_reference(std::vector<double>& out, std::vector<double>& lse, const float* q, const float* k,
                         const float* v, int64_t B, int64_t T, int64_t pos0, int64_t NH, int64_t NKV, int64_t HD,
                         int64_t qStride, int64_t kvStride, const int32_t* hidden) {
  const int64_t L = pos0 + T, group = NH / NKV;
  const double scale = 1.0 / std::sqrt(double(HD));
  out.assign(static_cast<size_t>(B * T * NH * HD), 0.0);
  lse.assign(static_cast<size_t>(B * NH * T), 0.0);
  std::vector<double> s(static_cast<size_t>(L));
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < NH; h++)
      for (int64_t i = 0; i < T; i++) {
        const float* qr = q + (b * T + i) * qStride + h * HD;
        double mx = -INFINITY;
        for (int64_t j = 0; j < L; j++) {
          if (!sees(hidden, b, pos0 + i, j)) continue;
          const float* kr = k + (b * L + j) * kvStride + (h / group) * HD;
          double dot = 0;
          for (int64_t d = 0; d < HD; d++) dot += double(qr[d]) * kr[d];
          s[j] = dot * scale;
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        double* o = &out[((b * T + i) * NH + h) * HD];
        for (int64_t j = 0; j < L; j++) {
          if (!sees(hidden, b, pos0 + i, j)) continue;
          const double p = std::exp(s[j] - mx);
          sum += p;
          const float* vr = v + (b * L + j) * kvStride + (h / group) * HD;
          for (int64_t d = 0; d < HD; d++) o[d] += p * vr[d];
        }
        for (int64_t d = 0; d < HD; d++) o[d] /= sum;
        lse[(b * NH + h) * T + i] = mx + std::log(sum);
      }
}

std::vector<float> narrow(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

/**
 * forward then backward for one configuration; fused: q|k|v interleaved per row in one buffer (GPT-2's c_attn,
 * row stride C + 2 KVC), otherwise three contiguous blocks
 */
void attention_case(Rng& rng, int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HD, bool fused,
                    const std::vector<int32_t>& hidden_ranges) {
  const int32_t* hidden = hidden_ranges.empty() ? nullptr : hidden_ranges.data();
  const int64_t C = NH * HD, KVC = NKV * HD, rows = B * T, group = NH / NKV;
  const int64_t qStride = fused ? C + 2 * KVC : C, kvStride = fused ? C + 2 * KVC : KVC;
  const int64_t q_at = 0, k_at = fused ? C : rows * C, v_at = fused ? C + KVC : rows * (C + KVC);
  std::string label = sizes({{"B", B}, {"T", T}, {"NH", NH}, {"NKV", NKV}, {"HD", HD}}) + (fused ? " fused" : "");
  if (hidden) {
    label += " hidden";
    for (int32_t x : hidden_ranges) label += " " + std::to_string(x);
  }
  const auto qkv = rng.floats(rows * (C + 2 * KVC), 2.0);
  const float *q = qkv.data() + q_at, *k = qkv.data() + k_at, *v = qkv.data() + v_at;
  std::vector<double> out, lse;
  attention_reference(out, lse, q, k, v, B, T, 0, NH, NKV, HD, qStride, kvStride, hidden);
  run_case("attention_forward", label,
           {f32_out("out", rng.floats(rows * C), out, kSum), f32_out("lse", rng.floats(B * NH * T), lse, kSum)},
           [&](Bufs& o) {
             kern.attention_forward(o.f(0), o.f(1), q, k, v, B, T, NH, NKV, HD, qStride, kvStride, hidden);
           });
  // backward from the reference's out and lse rounded to float32, as the forward would hand them over
  const auto out32 = narrow(out), lse32 = narrow(lse), dout = rng.floats(rows * C);
  const auto dqkv = rng.floats(static_cast<int64_t>(qkv.size()));
  auto e = widen(dqkv);
  const double scale = 1.0 / std::sqrt(double(HD));
  std::vector<double> p(static_cast<size_t>(T)), ds(static_cast<size_t>(T));
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < NH; h++) {
      const int64_t kvh = h / group;
      for (int64_t i = 0; i < T; i++) {
        const float* qr = q + (b * T + i) * qStride + h * HD;
        const float* dor = &dout[((b * T + i) * NH + h) * HD];
        const float* orow = &out32[((b * T + i) * NH + h) * HD];
        double D = 0;
        for (int64_t d = 0; d < HD; d++) D += double(dor[d]) * orow[d];
        const double l = lse32[(b * NH + h) * T + i];
        for (int64_t j = 0; j <= i; j++) {
          if (!sees(hidden, b, i, j)) continue;
          const float* kr = k + (b * T + j) * kvStride + kvh * HD;
          const float* vr = v + (b * T + j) * kvStride + kvh * HD;
          double s = 0, dp = 0;
          for (int64_t d = 0; d < HD; d++) s += double(qr[d]) * kr[d], dp += double(dor[d]) * vr[d];
          const double pij = std::exp(s * scale - l), dsij = pij * (dp - D) * scale;
          for (int64_t d = 0; d < HD; d++) {
            e[q_at + (b * T + i) * qStride + h * HD + d] += dsij * kr[d];
            e[k_at + (b * T + j) * kvStride + kvh * HD + d] += dsij * qr[d];
            e[v_at + (b * T + j) * kvStride + kvh * HD + d] += pij * dor[d];
          }
        }
      }
    }
  run_case("attention_backward", label, {f32_out("dqkv", dqkv, e, kSumBackward)}, [&](Bufs& o) {
    float* d = o.f(0);
    kern.attention_backward(d + q_at, d + k_at, d + v_at, dout.data(), q, k, v, out32.data(), lse32.data(), B, T, NH,
                            NKV, HD, qStride, kvStride, hidden);
  });
}

void attention_cases() {
  Rng rng(606);
  // odd lengths, grouped-query heads (ratios 1, 2, 3), head sizes below, at and above the register strips (8 floats
  // on NEON), several 32-query / 64-key tiles
  attention_case(rng, 1, 1, 1, 1, 1, false, {});
  attention_case(rng, 2, 7, 4, 2, 16, false, {});
  attention_case(rng, 1, 65, 2, 1, 32, false, {});
  attention_case(rng, 2, 127, 4, 4, 8, false, {});
  attention_case(rng, 1, 150, 6, 2, 64, false, {});
  attention_case(rng, 1, 70, 3, 1, 12, false, {});
  attention_case(rng, 2, 33, 2, 2, 5, false, {});
  attention_case(rng, 2, 63, 3, 3, 16, true, {});
  attention_case(rng, 1, 70, 4, 2, 8, true, {});
  // the forward's transposed scores: whole query tiles only (the 5M bench shape, lanes all real), and four query
  // heads per kv head (S^T 128 lanes wide) over several key tiles with a partial last query tile
  attention_case(rng, 2, 256, 6, 2, 32, false, {});
  attention_case(rng, 1, 200, 8, 2, 64, false, {});
  // hidden keys (a shared prefix and two continuations in one row): inside one key tile, across tile borders, from
  // 0, empty, up to T; then whole key tiles skipped
  attention_case(rng, 5, 130, 6, 2, 32, false, {40, 100, 0, 70, 63, 65, 0, 0, 5, 130});
  attention_case(rng, 5, 130, 4, 4, 16, true, {40, 100, 0, 70, 63, 65, 0, 0, 5, 130});
  attention_case(rng, 1, 9, 2, 1, 64, false, {2, 5});
  attention_case(rng, 1, 200, 2, 1, 8, false, {3, 140});
}

void decode_cases() {
  Rng rng(707);
  // prefill, one new token, several, odd sizes, fused strides
  const int64_t shapes[][6] = {{1, 0, 1, 1, 1, 0},  {7, 0, 4, 2, 16, 0},   {1, 130, 6, 2, 32, 0},
                               {5, 63, 4, 4, 8, 1}, {1, 200, 8, 2, 64, 0}, {70, 65, 2, 1, 32, 0}, {3, 17, 6, 3, 12, 1}};
  for (const auto& s : shapes) {
    const int64_t T = s[0], pos0 = s[1], NH = s[2], NKV = s[3], HD = s[4];
    const bool fused = s[5] != 0;
    const int64_t C = NH * HD, KVC = NKV * HD, L = pos0 + T;
    const int64_t qStride = fused ? 3 * C : C, kvStride = fused ? 3 * C : KVC;
    const auto q = rng.floats(T * qStride), k = rng.floats(L * kvStride), v = rng.floats(L * kvStride);
    std::vector<double> out, lse;
    attention_reference(out, lse, q.data(), k.data(), v.data(), 1, T, pos0, NH, NKV, HD, qStride, kvStride, nullptr);
    const std::string label =
        sizes({{"T", T}, {"pos0", pos0}, {"NH", NH}, {"NKV", NKV}, {"HD", HD}}) + (fused ? " fused" : "");
    run_case("attention_decode", label, {f32_out("out", rng.floats(T * C), out, kSum)}, [&](Bufs& o) {
      kern.attention_decode(o.f(0), q.data(), k.data(), v.data(), T, pos0, NH, NKV, HD, qStride, kvStride);
    });
  }
}

// ------------------------------------------------------------------------------------------------ pointwise

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

void pointwise_cases() {
  Rng rng(808);
  const double kGelu = std::sqrt(2.0 / std::acos(-1.0));
  // vector-width tails, and 100,003 elements: several 32K-element chunks, so 3 threads share the work
  for (int64_t N : {1, 7, 63, 65, 127, 100003}) {
    const std::string shape = sizes({{"N", N}});
    const auto gate = rng.floats(N, 8.0), up = rng.floats(N, 2.0), dout = rng.floats(N);
    std::vector<double> sw(N), gl(N);
    auto dg_init = rng.floats(N), du_init = rng.floats(N), dx_init = rng.floats(N);
    auto dg = widen(dg_init), du = widen(du_init), dx = widen(dx_init);
    std::vector<double> wdg(N), wdu(N), wdx(N);  // written: the gradients alone
    for (int64_t i = 0; i < N; i++) {
      const double g = gate[i], sg = sigmoid(g);
      sw[i] = g * sg * up[i];
      wdu[i] = double(dout[i]) * g * sg;
      wdg[i] = double(dout[i]) * up[i] * sg * (1.0 + g * (1.0 - sg));
      du[i] += wdu[i];
      dg[i] += wdg[i];
      const double u = kGelu * (g + 0.044715 * g * g * g), th = std::tanh(u);
      gl[i] = 0.5 * g * (1.0 + th);
      wdx[i] = dout[i] * (0.5 * (1.0 + th) + 0.5 * g * (1.0 - th * th) * kGelu * (1.0 + 3.0 * 0.044715 * g * g));
      dx[i] += wdx[i];
    }
    run_case("swiglu_forward", shape, {f32_out("out", rng.floats(N), sw, kPointwise)},
             [&](Bufs& o) { kern.swiglu_forward(o.f(0), gate.data(), up.data(), N); });
    run_case("swiglu_backward", shape, {f32_out("dgate", dg_init, dg, kPointwise), f32_out("dup", du_init, du, kPointwise)},
             [&](Bufs& o) { kern.swiglu_backward(o.f(0), o.f(1), dout.data(), gate.data(), up.data(), N, true); });
    run_case("swiglu_backward", shape + " written",
             {f32_out("dgate", dg_init, wdg, kPointwise), f32_out("dup", du_init, wdu, kPointwise)},
             [&](Bufs& o) { kern.swiglu_backward(o.f(0), o.f(1), dout.data(), gate.data(), up.data(), N, false); });
    run_case("gelu_forward", shape, {f32_out("out", rng.floats(N), gl, kPointwise)},
             [&](Bufs& o) { kern.gelu_forward(o.f(0), gate.data(), N); });
    run_case("gelu_backward", shape, {f32_out("dinp", dx_init, dx, kPointwise)},
             [&](Bufs& o) { kern.gelu_backward(o.f(0), dout.data(), gate.data(), N, true); });
    run_case("gelu_backward", shape + " written", {f32_out("dinp", dx_init, wdx, kPointwise)},
             [&](Bufs& o) { kern.gelu_backward(o.f(0), dout.data(), gate.data(), N, false); });
    std::vector<double> sum(N), twice(N), axpy(N), scaled(N);
    const auto dst = rng.floats(N);
    for (int64_t i = 0; i < N; i++) {
      sum[i] = double(gate[i]) + up[i];
      twice[i] = double(float(sum[i])) + up[i];  // b += a after a = a + b, each one rounding
      axpy[i] = dst[i] + -0.37 * double(up[i]);
      scaled[i] = double(gate[i]) * double(0.731f);
    }
    run_case("add", shape, {f32_out("out", rng.floats(N), sum, kExact)},
             [&](Bufs& o) { kern.add(o.f(0), gate.data(), up.data(), N); });
    run_case("add", shape + " aliased", {f32_out("a", gate, sum, kExact), f32_out("b", up, twice, kExact)}, [&](Bufs& o) {
      kern.add(o.f(0), o.f(0), o.f(1), N);
      kern.add(o.f(1), o.f(0), o.f(1), N);
    });
    // one multiply and one add (fused into one rounding where the compiler contracts them): a rounding or two
    run_case("axpy", shape, {f32_out("dst", dst, axpy, Tol{1e-6, false})},
             [&](Bufs& o) { kern.axpy(o.f(0), up.data(), -0.37f, N); });
    run_case("scale", shape, {f32_out("x", gate, scaled, kExact)}, [&](Bufs& o) { kern.scale(o.f(0), 0.731f, N); });
    run_case("zero", shape, {f32_out("x", gate, std::vector<double>(static_cast<size_t>(N), 0.0), kExact)},
             [&](Bufs& o) { kern.zero(o.f(0), N); });
    // dropout: the mask is src/backend/kernels.ts's dropoutKeeps, restated here from its definition (the lowbias32
    // hash of key ^ i * 0x9e3779b9, kept when >= p * 2^32 compared as real numbers); kept values x / (1 - p)
    for (const double p : {0.05, 0.5}) {
      for (const uint32_t key : {0u, 0x9e3779b9u, 0xffffffffu}) {
        const double inv = 1.0 / (1.0 - p);
        std::vector<double> fwd(N), bwd(N);
        for (int64_t i = 0; i < N; i++) {
          uint32_t h = key ^ (uint32_t(i) * 0x9e3779b9u);
          h ^= h >> 16;
          h *= 0x21f0aaadu;
          h ^= h >> 15;
          h *= 0x735a2d97u;
          h ^= h >> 15;
          const bool keep = double(h) >= p * 4294967296.0;
          fwd[i] = keep ? double(up[i]) * inv : 0.0;
          bwd[i] = keep ? double(dst[i]) + double(up[i]) * inv : double(dst[i]);
        }
        const std::string what = shape + " p=" + std::to_string(p) + " key=" + std::to_string(key);
        // forward: one multiply per element, rounded once; backward: a multiply-add, contracted or not
        run_case("dropout_forward", what, {f32_out("out", rng.floats(N), fwd, kExact)},
                 [&](Bufs& o) { kern.dropout_forward(o.f(0), up.data(), N, key, p); });
        run_case("dropout_backward", what, {f32_out("dinp", dst, bwd, Tol{2e-7, false})},
                 [&](Bufs& o) { kern.dropout_backward(o.f(0), up.data(), N, key, p); });
      }
    }
  }
}

// ------------------------------------------------------------------------------------------------ loss head

void logprob_cases() {
  Rng rng(909);
  const int64_t shapes[][2] = {{1, 1}, {7, 63}, {5, 1000}, {3, 32001}, {40, 1001}};
  for (const auto& s : shapes) {
    const int64_t N = s[0], V = s[1];
    const std::string shape = sizes({{"N", N}, {"V", V}});
    const auto logits = rng.floats(N * V, 6.0);
    auto targets = rng.ints(N, -1, static_cast<int32_t>(V));
    targets[0] = static_cast<int32_t>(V - 1);
    if (N > 1) targets[1] = -1;  // a row without a target: zeros
    std::vector<double> logp(N), lse(N);
    for (int64_t n = 0; n < N; n++) {
      if (targets[n] < 0) continue;
      double mx = -INFINITY, sum = 0;
      for (int64_t j = 0; j < V; j++) mx = std::max(mx, double(logits[n * V + j]));
      for (int64_t j = 0; j < V; j++) sum += std::exp(logits[n * V + j] - mx);
      lse[n] = mx + std::log(sum);
      logp[n] = logits[n * V + targets[n]] - lse[n];
    }
    run_case("logprob_forward", shape,
             {f32_out("logp", rng.floats(N), logp, kPointwise), f32_out("lse", rng.floats(N), lse, kPointwise)},
             [&](Bufs& o) { kern.logprob_forward(o.f(0), o.f(1), logits.data(), targets.data(), N, V); });
    const auto lse32 = narrow(lse), dlogp = rng.floats(N);
    std::vector<double> dlogits(static_cast<size_t>(N * V), 0.0);
    for (int64_t n = 0; n < N; n++) {
      if (targets[n] < 0) continue;
      for (int64_t j = 0; j < V; j++)
        dlogits[n * V + j] = -double(dlogp[n]) * std::exp(double(logits[n * V + j]) - lse32[n]);
      dlogits[n * V + targets[n]] += dlogp[n];
    }
    run_case("logprob_backward", shape, {f32_out("dlogits", rng.floats(N * V), dlogits, kPointwise)}, [&](Bufs& o) {
      kern.logprob_backward(o.f(0), dlogp.data(), logits.data(), lse32.data(), targets.data(), N, V);
    });
    run_case("logprob_backward", shape + " in place", {f32_out("logits", logits, dlogits, kPointwise)}, [&](Bufs& o) {
      kern.logprob_backward(o.f(0), dlogp.data(), o.f(0), lse32.data(), targets.data(), N, V);
    });
  }
}

/**
 * logits (N,V) whose rows cycle through the ties the first-maximum rule must resolve: the maximum twice far apart,
 * three times side by side, a constant row, a unique maximum in the last element, two in the tail; then random
 */
void logits_stats_cases() {
  Rng rng(1010);
  const int64_t shapes[][2] = {{1, 1}, {6, 7}, {12, 63}, {6, 65}, {7, 129}, {6, 1000}, {3, 32001}};
  for (const auto& s : shapes) {
    const int64_t N = s[0], V = s[1];
    auto logits = rng.floats(N * V, 6.0);
    auto at = [&](int64_t i) { return std::min(V - 1, std::max(int64_t(0), i)); };
    for (int64_t n = 0; n < N; n++) {
      float* row = logits.data() + n * V;
      switch (n % 7) {
        case 0: row[at(3)] = 9, row[at(V - 1)] = 9; break;
        case 1: row[at(V / 2)] = 9, row[at(V / 2 + 1)] = 9, row[at(V / 2 + 5)] = 9; break;
        case 2: for (int64_t j = 0; j < V; j++) row[j] = 0.25f; break;
        case 3: row[V - 1] = 9; break;
        case 4: row[at(V - 2)] = 9, row[V - 1] = 9; break;
        case 5: for (int64_t j = 0; j < V; j += 3) row[j] = -INFINITY; break;  // the mean is -inf
        default: break;
      }
    }
    std::vector<double> mean(N), argmax(N);
    for (int64_t n = 0; n < N; n++) {
      const float* row = logits.data() + n * V;
      double sum = 0;
      int64_t best = 0;
      for (int64_t j = 0; j < V; j++) {
        sum += row[j];
        if (row[j] > row[best]) best = j;
      }
      mean[n] = sum / double(V), argmax[n] = double(best);
    }
    run_case("logits_stats", sizes({{"N", N}, {"V", V}}) + " (ties)",
             {f32_out("mean", rng.floats(N), mean, kRounded), i32_out("argmax", N, argmax)},
             [&](Bufs& o) { kern.logits_stats(o.f(0), o.i32(1), logits.data(), N, V); });
  }
}

// ------------------------------------------------------------------------------------------------ optimizer

void optimizer_cases() {
  Rng rng(1111);
  for (int64_t N : {1, 7, 63, 65, 127, 100003}) {
    const auto grads = rng.floats(N);
    for (double step : {1.0, 10.0}) {
      const double lr = 1e-3, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.01;
      const auto p = rng.floats(N);
      auto m = rng.floats(N, 0.1), v = rng.floats(N, 0.1);
      for (auto& x : v) x = std::fabs(x);
      std::vector<double> ep(N), em(N), ev(N);
      for (int64_t i = 0; i < N; i++) {
        em[i] = b1 * m[i] + (1 - b1) * grads[i];
        ev[i] = b2 * v[i] + (1 - b2) * double(grads[i]) * grads[i];
        ep[i] = p[i] * (1 - lr * wd) -
                lr / (1 - std::pow(b1, step)) * em[i] / (std::sqrt(ev[i]) / std::sqrt(1 - std::pow(b2, step)) + eps);
      }
      run_case("adamw_step", sizes({{"N", N}, {"step", int64_t(step)}}),
               {f32_out("params", p, ep, kPointwise), f32_out("m", m, em, kPointwise), f32_out("v", v, ev, kPointwise)},
               [&](Bufs& o) { kern.adamw_step(o.f(0), grads.data(), o.f(1), o.f(2), N, lr, b1, b2, eps, wd, step); });
    }
    const auto x = rng.floats(N, 3.0);
    double ss = 0;
    for (float xi : x) ss += double(xi) * xi;
    // float64 partial sums per thread chunk: the bits follow the thread count, the value does not
    run_case("sum_squares", sizes({{"N", N}}), {f64_out("result", {ss}, kFloat64)},
             [&](Bufs& o) {
               const double result = kern.sum_squares(x.data(), N);
               std::memcpy(o.raw(0), &result, 8);
             }, /*thread_invariant=*/false);
  }
}

/** the peak probe does no arithmetic anyone reads: it must run and report a positive, finite rate */
void peak_probe_case() {
  if (filter && std::string("fma_peak_gflops").find(filter) == std::string::npos) return;
  orpo::pool_set_threads(1);
  const double gflops = kern.fma_peak_gflops(1);
  const bool ok = std::isfinite(gflops) && gflops > 0;
  totals.cases++, totals.checks++;
  if (!ok) totals.failures++;
  std::printf("{\"kernel\":\"fma_peak_gflops\",\"case\":\"threads1\",\"threads\":1,\"output\":\"gflops\",\"type\":\"f64\","
              "\"n\":0,\"tol\":\"positive\",\"value\":%.6g,\"words\":0,\"ok\":%s}\n",
              gflops, ok ? "true" : "false");
}

}  // namespace

int main(int argc, char** argv) {
  const char* dump_path = nullptr;
  bool probe = true;
  for (int i = 1; i < argc; i++) {
    const std::string arg = argv[i];
    if (arg == "--dump" && i + 1 < argc) dump_path = argv[++i];
    else if (arg == "--filter" && i + 1 < argc) filter = argv[++i];
    else if (arg == "--no-probe") probe = false;
    else {
      std::fprintf(stderr, "usage: parity [--dump FILE] [--filter SUBSTRING] [--no-probe]\n");
      return 2;
    }
  }
  if (dump_path && !(dump = std::fopen(dump_path, "wb"))) {
    std::fprintf(stderr, "parity: cannot write %s\n", dump_path);
    return 2;
  }
  // The fixed blocks, whatever this machine's caches: the cases below are sized around them (and the NEON and
  // generic builds are compared element by element); gemm_cases runs other blocks explicitly.
  kern.gemm_configure(nullptr, "fixed");
  gemm_config_cases();
  gemm_cases();
  matmul_cases();
  bf16_weight_matmul_cases();
  embedding_cases();
  norm_cases();
  rope_cases();
  attention_cases();
  decode_cases();
  pointwise_cases();
  logprob_cases();
  logits_stats_cases();
  optimizer_cases();
  if (probe) peak_probe_case();
  if (dump) std::fclose(dump);
  std::printf("{\"summary\":true,\"isa\":\"%s\",\"cases\":%lld,\"checks\":%lld,\"failures\":%lld,\"words\":%lld}\n",
              kern.isa, static_cast<long long>(totals.cases), static_cast<long long>(totals.checks),
              static_cast<long long>(totals.failures), static_cast<long long>(totals.words));
  return totals.failures ? 1 : 0;
}
