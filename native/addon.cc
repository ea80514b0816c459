// The N-API binding: picks the kernel table for this CPU once, then exposes each kernel to JavaScript with the
// argument order of src/backend/kernels.ts. Float32Array/Int32Array arguments are used in place (no copies;
// the data pointer N-API returns already includes the view's byteOffset). Every length, size and index is
// checked here before a kernel runs, so a wrong shape throws a JavaScript RangeError instead of reading or
// writing out of bounds.
#include <node_api.h>

#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

#include "cpu.h"
#include "kernels.h"
#include "pool.h"

namespace orpo {
namespace {

const KernelTable* select_kernels() {
  const char* force = std::getenv("ORPO_ISA");  // for testing the slower paths on a fast machine
#if defined(__x86_64__)
  __builtin_cpu_init();
  const bool has_avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                          __builtin_cpu_supports("fma");
  const bool has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (force && std::strcmp(force, "generic") == 0) return &kernels_generic;
  if (force && std::strcmp(force, "avx2") == 0 && has_avx2) return &kernels_avx2;
  if (has_avx512) return &kernels_avx512;
  if (has_avx2) return &kernels_avx2;
#else
  (void)force;
#endif
  return &kernels_generic;
}

const KernelTable& K() {
  static const KernelTable* table = select_kernels();
  return *table;
}

constexpr size_t kMaxArgs = 17;

/**
 * Reads one call's arguments. The first failure throws a JavaScript error naming the kernel and argument;
 * later reads return harmless defaults and the caller checks ok() before running the kernel.
 */
class Args {
 public:
  Args(napi_env env, napi_callback_info info, const char* kernel, size_t expected) : env_(env), kernel_(kernel) {
    argc_ = kMaxArgs;
    if (napi_get_cb_info(env, info, &argc_, argv_, nullptr, nullptr) != napi_ok) {
      fail("could not read arguments");
      return;
    }
    if (argc_ < expected) fail("expected %zu arguments, got %zu", expected, argc_);
  }

  bool ok() const { return ok_; }

  /** a non-negative integer size */
  int64_t size(size_t i, const char* name) {
    const double d = number(i, name);
    if (!ok_) return 0;
    if (!(d >= 0) || d != std::floor(d) || d > 9007199254740991.0) {
      fail("'%s' must be a non-negative integer, got %g", name, d);
      return 0;
    }
    return static_cast<int64_t>(d);
  }

  /** any integer (positions may be offsets) */
  int64_t integer(size_t i, const char* name) {
    const double d = number(i, name);
    if (!ok_) return 0;
    if (d != std::floor(d) || std::fabs(d) > 9007199254740991.0) {
      fail("'%s' must be an integer, got %g", name, d);
      return 0;
    }
    return static_cast<int64_t>(d);
  }

  double number(size_t i, const char* name) {
    if (!ok_) return 0;
    double d = 0;
    if (napi_get_value_double(env_, argv_[i], &d) != napi_ok) {
      fail("'%s' must be a number", name);
      return 0;
    }
    return d;
  }

  bool flag(size_t i, const char* name) {
    if (!ok_) return false;
    bool b = false;
    if (napi_get_value_bool(env_, argv_[i], &b) != napi_ok) fail("'%s' must be a boolean", name);
    return b;
  }

  /** a Float32Array of at least `need` elements; null/undefined allowed (returns nullptr) when `nullable` */
  float* f32(size_t i, const char* name, int64_t need, bool nullable = false) {
    return static_cast<float*>(typed(i, name, need, nullable, napi_float32_array, "Float32Array"));
  }

  const int32_t* i32(size_t i, const char* name, int64_t need, bool nullable = false) {
    return static_cast<const int32_t*>(typed(i, name, need, nullable, napi_int32_array, "Int32Array"));
  }

  /** an Int32Array the kernel writes (an output; i32 gives read-only access to inputs) */
  int32_t* i32_out(size_t i, const char* name, int64_t need) {
    return static_cast<int32_t*>(typed(i, name, need, false, napi_int32_array, "Int32Array"));
  }

  /**
   * A Bf16Buffer of at least `need` bfloat16 values: an object whose `data` is the Float32Array carrying them (two per
   * element, little-endian: a uint16_t view over its bytes reads them in order) and whose `length` counts them. The
   * carrier must hold ceil(length / 2) elements. Returns the bit patterns in place; `*length` gets the count.
   */
  const uint16_t* bf16(size_t i, const char* name, int64_t need, int64_t* length = nullptr) {
    if (!ok_) return nullptr;
    napi_valuetype vt;
    napi_typeof(env_, argv_[i], &vt);
    bool is_typed = false;
    napi_is_typedarray(env_, argv_[i], &is_typed);
    if (vt != napi_object || is_typed) {  // a typed array: most likely the float32 weight passed to the bf16 kernel
      fail("'%s' must be a Bf16Buffer (bfloat16 values in a Float32Array carrier)%s", name,
           is_typed ? ", not a typed array" : "");
      return nullptr;
    }
    napi_value data, len;
    double n = -1;
    napi_valuetype lt = napi_undefined;
    if (napi_get_named_property(env_, argv_[i], "data", &data) != napi_ok ||
        napi_get_named_property(env_, argv_[i], "length", &len) != napi_ok || napi_typeof(env_, len, &lt) != napi_ok ||
        lt != napi_number || napi_get_value_double(env_, len, &n) != napi_ok) {
      fail("'%s' must be a Bf16Buffer: an object with a Float32Array 'data' and a number 'length'", name);
      return nullptr;
    }
    if (!(n >= 0) || n != std::floor(n) || n > 9007199254740991.0) {
      fail("'%s.length' must be a non-negative integer, got %g", name, n);
      return nullptr;
    }
    const int64_t values = static_cast<int64_t>(n);
    char carrier[96];
    std::snprintf(carrier, sizeof carrier, "%s.data", name);
    // the carrier's elements must cover the values it claims (an odd last value fills half of one)
    const void* p = typed_value(data, carrier, (values + 1) / 2, false, napi_float32_array, "Float32Array");
    if (!ok_) return nullptr;
    if (values < need) {
      fail("'%s' holds %lld bfloat16 values but the sizes given need %lld", name, static_cast<long long>(values),
           static_cast<long long>(need));
      return nullptr;
    }
    if (length) *length = values;
    return static_cast<const uint16_t*>(p);
  }

  /** an optional trailing argument: absent, null and undefined all read as nullptr */
  const int32_t* optional_i32(size_t i, const char* name, int64_t need) {
    if (i >= argc_) return nullptr;
    return i32(i, name, need, true);
  }

  /** a*b*..., failing (instead of wrapping) when the product exceeds 2^53 */
  int64_t product(std::initializer_list<int64_t> factors) {
    double p = 1;
    int64_t q = 1;
    for (int64_t f : factors) {
      p *= double(f);
      q *= f;
      if (p > 9007199254740991.0) {
        fail("sizes multiply to more than 2^53 elements");
        return 0;
      }
    }
    return q;
  }

  void fail(const char* fmt, ...) __attribute__((format(printf, 2, 3))) {
    if (!ok_) return;
    ok_ = false;
    char detail[320];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    char msg[400];
    std::snprintf(msg, sizeof msg, "orpo native %s: %s", kernel_, detail);
    napi_throw_range_error(env_, "ERR_ORPO_NATIVE_ARGUMENT", msg);
  }

 private:
  void* typed(size_t i, const char* name, int64_t need, bool nullable, napi_typedarray_type want,
              const char* want_name) {
    return typed_value(argv_[i], name, need, nullable, want, want_name);
  }

  void* typed_value(napi_value v, const char* name, int64_t need, bool nullable, napi_typedarray_type want,
                    const char* want_name) {
    if (!ok_) return nullptr;
    napi_valuetype vt;
    napi_typeof(env_, v, &vt);
    if (vt == napi_null || vt == napi_undefined) {
      if (!nullable) fail("'%s' must be a %s, got %s", name, want_name, vt == napi_null ? "null" : "undefined");
      return nullptr;
    }
    bool is_typed = false;
    napi_is_typedarray(env_, v, &is_typed);
    if (!is_typed) {
      fail("'%s' must be a %s", name, want_name);
      return nullptr;
    }
    napi_typedarray_type type;
    size_t length = 0;
    void* data = nullptr;
    napi_get_typedarray_info(env_, v, &type, &length, &data, nullptr, nullptr);
    if (type != want) {
      fail("'%s' must be a %s (the native backend computes in float32; Float64Array is for the js backend)", name,
           want_name);
      return nullptr;
    }
    if (static_cast<int64_t>(length) < need) {
      fail("'%s' has %zu elements but the sizes given need %lld", name, length, static_cast<long long>(need));
      return nullptr;
    }
    return data;
  }

  napi_env env_;
  const char* kernel_;
  size_t argc_ = 0;
  napi_value argv_[kMaxArgs];
  bool ok_ = true;
};

napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

napi_value number(napi_env env, double x) {
  napi_value v;
  napi_create_double(env, x, &v);
  return v;
}

/** elements a strided (rows, width) view spans: (rows-1)*stride + width, or 0 for no rows */
int64_t strided_span(int64_t rows, int64_t stride, int64_t width) { return rows == 0 ? 0 : (rows - 1) * stride + width; }

// ------------------------------------------------------------------------------------------------ bindings

napi_value Gemm(napi_env env, napi_callback_info info) {
  Args a(env, info, "gemm", 9);
  const int64_t M = a.size(3, "M"), N = a.size(4, "N"), Kd = a.size(5, "K");
  const bool ta = a.flag(6, "transA"), tb = a.flag(7, "transB"), acc = a.flag(8, "accumulate");
  float* c = a.f32(0, "c", a.product({M, N}));
  const float* x = a.f32(1, "a", a.product({M, Kd}));
  const float* y = a.f32(2, "b", a.product({Kd, N}));
  if (a.ok()) K().gemm(c, x, y, M, N, Kd, ta, tb, acc);
  return undefined(env);
}

napi_value MatmulForward(napi_env env, napi_callback_info info) {
  Args a(env, info, "matmulForward", 7);
  const int64_t N = a.size(4, "N"), C = a.size(5, "C"), OC = a.size(6, "OC");
  float* out = a.f32(0, "out", a.product({N, OC}));
  const float* inp = a.f32(1, "inp", a.product({N, C}));
  const float* w = a.f32(2, "weight", a.product({OC, C}));
  const float* bias = a.f32(3, "bias", OC, true);
  if (a.ok()) K().matmul_forward(out, inp, w, bias, N, C, OC);
  return undefined(env);
}

napi_value MatmulBackward(napi_env env, napi_callback_info info) {
  Args a(env, info, "matmulBackward", 10);
  const int64_t N = a.size(6, "N"), C = a.size(7, "C"), OC = a.size(8, "OC");
  const bool acc = a.flag(9, "accumulate");
  float* dinp = a.f32(0, "dinp", a.product({N, C}), true);
  float* dw = a.f32(1, "dweight", a.product({OC, C}), true);
  float* db = a.f32(2, "dbias", OC, true);
  const float* dout = a.f32(3, "dout", a.product({N, OC}));
  const float* inp = a.f32(4, "inp", a.product({N, C}));
  const float* w = a.f32(5, "weight", a.product({OC, C}));
  if (a.ok()) K().matmul_backward(dinp, dw, db, dout, inp, w, N, C, OC, acc);
  return undefined(env);
}

/** ids must index rows of a table with `rows` rows */
bool check_ids(Args& a, const int32_t* ids, int64_t N, int64_t rows, const char* name) {
  if (!a.ok()) return false;
  for (int64_t n = 0; n < N; n++) {
    if (ids[n] < 0 || ids[n] >= rows) {
      a.fail("%s[%lld] = %d is outside the table's %lld rows", name, static_cast<long long>(n), ids[n],
             static_cast<long long>(rows));
      return false;
    }
  }
  return true;
}

/** number of whole C-wide rows in a Float32Array argument */
int64_t table_rows(napi_env env, napi_value v, int64_t C) {
  size_t length = 0;
  napi_typedarray_type type;
  if (napi_get_typedarray_info(env, v, &type, &length, nullptr, nullptr, nullptr) != napi_ok || C <= 0) return 0;
  return static_cast<int64_t>(length) / C;
}

napi_value EmbeddingForward(napi_env env, napi_callback_info info) {
  Args a(env, info, "embeddingForward", 6);
  const int64_t N = a.size(3, "N"), C = a.size(4, "C");
  const bool acc = a.flag(5, "accumulate");
  float* out = a.f32(0, "out", a.product({N, C}));
  const int32_t* ids = a.i32(1, "ids", N);
  const float* table = a.f32(2, "table", 0);
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (a.ok() && C > 0 && check_ids(a, ids, N, table_rows(env, argv[2], C), "ids"))
    K().embedding_forward(out, ids, table, N, C, acc);
  return undefined(env);
}

napi_value EmbeddingBackward(napi_env env, napi_callback_info info) {
  Args a(env, info, "embeddingBackward", 5);
  const int64_t N = a.size(3, "N"), C = a.size(4, "C");
  float* dtable = a.f32(0, "dtable", 0);
  const float* dout = a.f32(1, "dout", a.product({N, C}));
  const int32_t* ids = a.i32(2, "ids", N);
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (a.ok() && C > 0 && check_ids(a, ids, N, table_rows(env, argv[0], C), "ids"))
    K().embedding_backward(dtable, dout, ids, N, C);
  return undefined(env);
}

napi_value MatmulForwardBf16(napi_env env, napi_callback_info info) {
  Args a(env, info, "matmulForwardBf16", 7);
  const int64_t N = a.size(4, "N"), C = a.size(5, "C"), OC = a.size(6, "OC");
  float* out = a.f32(0, "out", a.product({N, OC}));
  const float* inp = a.f32(1, "inp", a.product({N, C}));
  const uint16_t* w = a.bf16(2, "weight", a.product({OC, C}));
  const float* bias = a.f32(3, "bias", OC, true);
  if (a.ok()) K().matmul_forward_bf16(out, inp, w, bias, N, C, OC);
  return undefined(env);
}

napi_value MatmulBackwardBf16(napi_env env, napi_callback_info info) {
  Args a(env, info, "matmulBackwardBf16", 7);
  const int64_t N = a.size(3, "N"), C = a.size(4, "C"), OC = a.size(5, "OC");
  const bool acc = a.flag(6, "accumulate");
  float* dinp = a.f32(0, "dinp", a.product({N, C}));
  const float* dout = a.f32(1, "dout", a.product({N, OC}));
  const uint16_t* w = a.bf16(2, "weight", a.product({OC, C}));
  if (a.ok()) K().matmul_backward_bf16(dinp, dout, w, N, C, OC, acc);
  return undefined(env);
}

napi_value EmbeddingForwardBf16(napi_env env, napi_callback_info info) {
  Args a(env, info, "embeddingForwardBf16", 6);
  const int64_t N = a.size(3, "N"), C = a.size(4, "C");
  const bool acc = a.flag(5, "accumulate");
  float* out = a.f32(0, "out", a.product({N, C}));
  const int32_t* ids = a.i32(1, "ids", N);
  int64_t values = 0;
  const uint16_t* table = a.bf16(2, "table", 0, &values);
  if (a.ok() && C > 0 && check_ids(a, ids, N, values / C, "ids")) K().embedding_forward_bf16(out, ids, table, N, C, acc);
  return undefined(env);
}

napi_value LayernormForward(napi_env env, napi_callback_info info) {
  Args a(env, info, "layernormForward", 9);
  const int64_t N = a.size(6, "N"), C = a.size(7, "C");
  const double eps = a.number(8, "eps");
  float* out = a.f32(0, "out", a.product({N, C}));
  float* mean = a.f32(1, "mean", N);
  float* rstd = a.f32(2, "rstd", N);
  const float* inp = a.f32(3, "inp", a.product({N, C}));
  const float* w = a.f32(4, "weight", C);
  const float* b = a.f32(5, "bias", C);
  if (a.ok() && C > 0) K().layernorm_forward(out, mean, rstd, inp, w, b, N, C, float(eps));
  return undefined(env);
}

napi_value LayernormBackward(napi_env env, napi_callback_info info) {
  Args a(env, info, "layernormBackward", 10);
  const int64_t N = a.size(8, "N"), C = a.size(9, "C");
  float* dinp = a.f32(0, "dinp", a.product({N, C}));
  float* dw = a.f32(1, "dweight", C, true);
  float* db = a.f32(2, "dbias", C, true);
  const float* dout = a.f32(3, "dout", a.product({N, C}));
  const float* inp = a.f32(4, "inp", a.product({N, C}));
  const float* w = a.f32(5, "weight", C);
  const float* mean = a.f32(6, "mean", N);
  const float* rstd = a.f32(7, "rstd", N);
  if (a.ok() && C > 0) K().layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C);
  return undefined(env);
}

napi_value RmsnormForward(napi_env env, napi_callback_info info) {
  Args a(env, info, "rmsnormForward", 7);
  const int64_t N = a.size(4, "N"), C = a.size(5, "C");
  const double eps = a.number(6, "eps");
  float* out = a.f32(0, "out", a.product({N, C}));
  float* rstd = a.f32(1, "rstd", N);
  const float* inp = a.f32(2, "inp", a.product({N, C}));
  const float* w = a.f32(3, "weight", C);
  if (a.ok() && C > 0) K().rmsnorm_forward(out, rstd, inp, w, N, C, float(eps));
  return undefined(env);
}

napi_value RmsnormBackward(napi_env env, napi_callback_info info) {
  Args a(env, info, "rmsnormBackward", 8);
  const int64_t N = a.size(6, "N"), C = a.size(7, "C");
  float* dinp = a.f32(0, "dinp", a.product({N, C}));
  float* dw = a.f32(1, "dweight", C, true);
  const float* dout = a.f32(2, "dout", a.product({N, C}));
  const float* inp = a.f32(3, "inp", a.product({N, C}));
  const float* w = a.f32(4, "weight", C);
  const float* rstd = a.f32(5, "rstd", N);
  if (a.ok() && C > 0) K().rmsnorm_backward(dinp, dw, dout, inp, w, rstd, N, C);
  return undefined(env);
}

/** shared argument reading for ropeForward/ropeBackward (the same signature, backward's with `accumulate` last) */
napi_value Rope(napi_env env, napi_callback_info info, bool forward) {
  Args a(env, info, forward ? "ropeForward" : "ropeBackward", forward ? 9 : 10);
  const int64_t B = a.size(4, "B"), T = a.size(5, "T"), H = a.size(6, "H"), HD = a.size(7, "HD");
  const int64_t pos0 = a.size(8, "pos0");
  const bool acc = forward ? false : a.flag(9, "accumulate");
  if (a.ok() && HD % 2 != 0) a.fail("HD must be even for rotate-half RoPE, got %lld", static_cast<long long>(HD));
  const int64_t n = a.product({B, T, H, HD});
  const int64_t table = a.product({pos0 + T, HD / 2});
  float* dst = a.f32(0, forward ? "out" : "dinp", n);
  const float* src = a.f32(1, forward ? "inp" : "dout", n);
  const float* cs = a.f32(2, "cos", table);
  const float* sn = a.f32(3, "sin", table);
  if (!a.ok()) return undefined(env);
  if (forward) K().rope_forward(dst, src, cs, sn, B, T, H, HD, pos0);
  else K().rope_backward(dst, src, cs, sn, B, T, H, HD, pos0, acc);
  return undefined(env);
}
napi_value RopeForward(napi_env env, napi_callback_info info) { return Rope(env, info, true); }
napi_value RopeBackward(napi_env env, napi_callback_info info) { return Rope(env, info, false); }

struct AttentionSizes {
  int64_t B, T, NH, NKV, HD, qStride, kvStride, qSpan, kvSpan, outSize, lseSize;
};

/** the head layout every attention kernel takes: NKV divides NH, HD > 0, rows wide enough for their heads */
void check_heads(Args& a, int64_t NH, int64_t NKV, int64_t HD, int64_t qStride, int64_t kvStride) {
  if (!a.ok()) return;
  if (NKV == 0 || NH % NKV != 0)
    a.fail("NH (%lld) must be a multiple of NKV (%lld)", static_cast<long long>(NH), static_cast<long long>(NKV));
  else if (HD == 0)
    a.fail("HD must be positive");
  else if (qStride < NH * HD)
    a.fail("qStride (%lld) is smaller than NH*HD (%lld)", static_cast<long long>(qStride), static_cast<long long>(NH * HD));
  else if (kvStride < NKV * HD)
    a.fail("kvStride (%lld) is smaller than NKV*HD (%lld)", static_cast<long long>(kvStride),
           static_cast<long long>(NKV * HD));
}

/** reads and checks the seven trailing size arguments shared by attentionForward/Backward */
AttentionSizes attention_sizes(Args& a, size_t first) {
  AttentionSizes s{};
  s.B = a.size(first, "B");
  s.T = a.size(first + 1, "T");
  s.NH = a.size(first + 2, "NH");
  s.NKV = a.size(first + 3, "NKV");
  s.HD = a.size(first + 4, "HD");
  s.qStride = a.size(first + 5, "qStride");
  s.kvStride = a.size(first + 6, "kvStride");
  if (!a.ok()) return s;
  check_heads(a, s.NH, s.NKV, s.HD, s.qStride, s.kvStride);
  const int64_t rows = a.product({s.B, s.T});
  a.product({rows, s.qStride + 1});
  a.product({rows, s.kvStride + 1});
  s.qSpan = strided_span(rows, s.qStride, s.NH * s.HD);
  s.kvSpan = strided_span(rows, s.kvStride, s.NKV * s.HD);
  s.outSize = a.product({rows, s.NH, s.HD});
  s.lseSize = a.product({s.B, s.NH, s.T});
  return s;
}

/** the optional hidden-key ranges (B,2) of attentionForward/Backward: 0 <= lo <= hi <= T in every row */
const int32_t* attention_hidden(Args& a, size_t i, const AttentionSizes& s) {
  const int32_t* hidden = a.optional_i32(i, "hidden", 2 * s.B);
  if (!hidden || !a.ok()) return nullptr;
  for (int64_t b = 0; b < s.B; b++) {
    const int64_t lo = hidden[2 * b], hi = hidden[2 * b + 1];
    if (lo < 0 || lo > hi || hi > s.T) {
      a.fail("hidden keys of row %lld are [%lld, %lld): need 0 <= lo <= hi <= T (%lld)", static_cast<long long>(b),
             static_cast<long long>(lo), static_cast<long long>(hi), static_cast<long long>(s.T));
      return nullptr;
    }
  }
  return hidden;
}

napi_value AttentionForward(napi_env env, napi_callback_info info) {
  Args a(env, info, "attentionForward", 12);
  const AttentionSizes s = attention_sizes(a, 5);
  float* out = a.f32(0, "out", s.outSize);
  float* lse = a.f32(1, "lse", s.lseSize);
  const float* q = a.f32(2, "q", s.qSpan);
  const float* k = a.f32(3, "k", s.kvSpan);
  const float* v = a.f32(4, "v", s.kvSpan);
  const int32_t* hidden = attention_hidden(a, 12, s);
  if (a.ok()) K().attention_forward(out, lse, q, k, v, s.B, s.T, s.NH, s.NKV, s.HD, s.qStride, s.kvStride, hidden);
  return undefined(env);
}

napi_value AttentionBackward(napi_env env, napi_callback_info info) {
  Args a(env, info, "attentionBackward", 16);
  const AttentionSizes s = attention_sizes(a, 9);
  float* dq = a.f32(0, "dq", s.qSpan);
  float* dk = a.f32(1, "dk", s.kvSpan);
  float* dv = a.f32(2, "dv", s.kvSpan);
  const float* dout = a.f32(3, "dout", s.outSize);
  const float* q = a.f32(4, "q", s.qSpan);
  const float* k = a.f32(5, "k", s.kvSpan);
  const float* v = a.f32(6, "v", s.kvSpan);
  const float* out = a.f32(7, "out", s.outSize);
  const float* lse = a.f32(8, "lse", s.lseSize);
  const int32_t* hidden = attention_hidden(a, 16, s);
  if (a.ok())
    K().attention_backward(dq, dk, dv, dout, q, k, v, out, lse, s.B, s.T, s.NH, s.NKV, s.HD, s.qStride, s.kvStride,
                           hidden);
  return undefined(env);
}

napi_value AttentionDecode(napi_env env, napi_callback_info info) {
  Args a(env, info, "attentionDecode", 11);
  const int64_t T = a.size(4, "T");
  const int64_t pos0 = a.size(5, "pos0");
  const int64_t NH = a.size(6, "NH");
  const int64_t NKV = a.size(7, "NKV");
  const int64_t HD = a.size(8, "HD");
  const int64_t qStride = a.size(9, "qStride");
  const int64_t kvStride = a.size(10, "kvStride");
  check_heads(a, NH, NKV, HD, qStride, kvStride);
  const int64_t keys = pos0 + T;
  a.product({keys, kvStride + 1});
  a.product({T, qStride + 1});
  float* out = a.f32(0, "out", a.product({T, NH, HD}));
  const float* q = a.f32(1, "q", strided_span(T, qStride, NH * HD));
  const float* k = a.f32(2, "k", strided_span(keys, kvStride, NKV * HD));
  const float* v = a.f32(3, "v", strided_span(keys, kvStride, NKV * HD));
  if (a.ok()) K().attention_decode(out, q, k, v, T, pos0, NH, NKV, HD, qStride, kvStride);
  return undefined(env);
}

napi_value SwigluForward(napi_env env, napi_callback_info info) {
  Args a(env, info, "swigluForward", 4);
  const int64_t N = a.size(3, "N");
  float* out = a.f32(0, "out", N);
  const float* g = a.f32(1, "gate", N);
  const float* u = a.f32(2, "up", N);
  if (a.ok()) K().swiglu_forward(out, g, u, N);
  return undefined(env);
}

napi_value SwigluBackward(napi_env env, napi_callback_info info) {
  Args a(env, info, "swigluBackward", 7);
  const int64_t N = a.size(5, "N");
  const bool acc = a.flag(6, "accumulate");
  float* dg = a.f32(0, "dgate", N);
  float* du = a.f32(1, "dup", N);
  const float* dout = a.f32(2, "dout", N);
  const float* g = a.f32(3, "gate", N);
  const float* u = a.f32(4, "up", N);
  if (a.ok()) K().swiglu_backward(dg, du, dout, g, u, N, acc);
  return undefined(env);
}

napi_value GeluForward(napi_env env, napi_callback_info info) {
  Args a(env, info, "geluForward", 3);
  const int64_t N = a.size(2, "N");
  float* out = a.f32(0, "out", N);
  const float* inp = a.f32(1, "inp", N);
  if (a.ok()) K().gelu_forward(out, inp, N);
  return undefined(env);
}

napi_value GeluBackward(napi_env env, napi_callback_info info) {
  Args a(env, info, "geluBackward", 5);
  const int64_t N = a.size(3, "N");
  const bool acc = a.flag(4, "accumulate");
  float* dinp = a.f32(0, "dinp", N);
  const float* dout = a.f32(1, "dout", N);
  const float* inp = a.f32(2, "inp", N);
  if (a.ok()) K().gelu_backward(dinp, dout, inp, N, acc);
  return undefined(env);
}

napi_value Add(napi_env env, napi_callback_info info) {
  Args a(env, info, "add", 4);
  const int64_t N = a.size(3, "N");
  float* out = a.f32(0, "out", N);
  const float* x = a.f32(1, "a", N);
  const float* y = a.f32(2, "b", N);
  if (a.ok()) K().add(out, x, y, N);
  return undefined(env);
}

napi_value Axpy(napi_env env, napi_callback_info info) {
  Args a(env, info, "axpy", 4);
  const double s = a.number(2, "scale");
  const int64_t N = a.size(3, "N");
  float* dst = a.f32(0, "dst", N);
  const float* src = a.f32(1, "src", N);
  if (a.ok()) K().axpy(dst, src, float(s), N);
  return undefined(env);
}

napi_value Zero(napi_env env, napi_callback_info info) {
  Args a(env, info, "zero", 2);
  const int64_t N = a.size(1, "N");
  float* x = a.f32(0, "x", N);
  if (a.ok()) K().zero(x, N);
  return undefined(env);
}

/** shared argument reading for dropoutForward/dropoutBackward (the same signature) */
napi_value Dropout(napi_env env, napi_callback_info info, bool forward) {
  Args a(env, info, forward ? "dropoutForward" : "dropoutBackward", 5);
  const int64_t N = a.size(2, "N");
  const double key = a.number(3, "key"), p = a.number(4, "p");
  float* dst = a.f32(0, forward ? "out" : "dinp", N);
  const float* src = a.f32(1, forward ? "inp" : "dout", N);
  if (a.ok() && !(key >= 0 && key <= 4294967295.0 && key == std::floor(key)))
    a.fail("'key' must be an integer in [0, 2^32), got %g", key);
  if (a.ok() && !(p >= 0 && p < 1)) a.fail("'p' must be in [0, 1), got %g", p);
  if (!a.ok()) return undefined(env);
  if (forward) K().dropout_forward(dst, src, N, uint32_t(key), p);
  else K().dropout_backward(dst, src, N, uint32_t(key), p);
  return undefined(env);
}
napi_value DropoutForward(napi_env env, napi_callback_info info) { return Dropout(env, info, true); }
napi_value DropoutBackward(napi_env env, napi_callback_info info) { return Dropout(env, info, false); }

/** targets must be < V (negative means "no target") */
bool check_targets(Args& a, const int32_t* targets, int64_t N, int64_t V) {
  if (!a.ok()) return false;
  for (int64_t n = 0; n < N; n++) {
    if (targets[n] >= V) {
      a.fail("targets[%lld] = %d is not below the vocabulary size %lld", static_cast<long long>(n), targets[n],
             static_cast<long long>(V));
      return false;
    }
  }
  return true;
}

napi_value LogprobForward(napi_env env, napi_callback_info info) {
  Args a(env, info, "logprobForward", 6);
  const int64_t N = a.size(4, "N"), V = a.size(5, "V");
  float* logp = a.f32(0, "logp", N);
  float* lse = a.f32(1, "lse", N);
  const float* logits = a.f32(2, "logits", a.product({N, V}));
  const int32_t* targets = a.i32(3, "targets", N);
  if (check_targets(a, targets, N, V)) K().logprob_forward(logp, lse, logits, targets, N, V);
  return undefined(env);
}

napi_value LogitsStats(napi_env env, napi_callback_info info) {
  Args a(env, info, "logitsStats", 5);
  const int64_t N = a.size(3, "N"), V = a.size(4, "V");
  if (a.ok() && N > 0 && V == 0) a.fail("V must be at least 1 (a row needs a value to average and an argmax)");
  if (a.ok() && V > 2147483647) a.fail("V (%lld) does not fit the int32 argmax", static_cast<long long>(V));
  float* mean = a.f32(0, "mean", N);
  int32_t* argmax = a.i32_out(1, "argmax", N);
  const float* logits = a.f32(2, "logits", a.product({N, V}));
  if (a.ok()) K().logits_stats(mean, argmax, logits, N, V);
  return undefined(env);
}

napi_value LogprobBackward(napi_env env, napi_callback_info info) {
  Args a(env, info, "logprobBackward", 7);
  const int64_t N = a.size(5, "N"), V = a.size(6, "V");
  float* dlogits = a.f32(0, "dlogits", a.product({N, V}));
  const float* dlogp = a.f32(1, "dlogp", N);
  const float* logits = a.f32(2, "logits", a.product({N, V}));
  const float* lse = a.f32(3, "lse", N);
  const int32_t* targets = a.i32(4, "targets", N);
  if (check_targets(a, targets, N, V)) K().logprob_backward(dlogits, dlogp, logits, lse, targets, N, V);
  return undefined(env);
}

napi_value AdamwStep(napi_env env, napi_callback_info info) {
  Args a(env, info, "adamwStep", 11);
  const int64_t N = a.size(4, "N");
  const double lr = a.number(5, "lr"), b1 = a.number(6, "beta1"), b2 = a.number(7, "beta2");
  const double eps = a.number(8, "eps"), wd = a.number(9, "weightDecay"), step = a.number(10, "step");
  if (a.ok() && !(step >= 1)) a.fail("step counts from 1, got %g", step);
  float* p = a.f32(0, "params", N);
  const float* g = a.f32(1, "grads", N);
  float* m = a.f32(2, "m", N);
  float* v = a.f32(3, "v", N);
  if (a.ok()) K().adamw_step(p, g, m, v, N, lr, b1, b2, eps, wd, step);
  return undefined(env);
}

napi_value SumSquares(napi_env env, napi_callback_info info) {
  Args a(env, info, "sumSquares", 2);
  const int64_t N = a.size(1, "N");
  const float* x = a.f32(0, "x", N);
  if (!a.ok()) return undefined(env);
  return number(env, K().sum_squares(x, N));
}

napi_value Scale(napi_env env, napi_callback_info info) {
  Args a(env, info, "scale", 3);
  const double s = a.number(1, "s");
  const int64_t N = a.size(2, "N");
  float* x = a.f32(0, "x", N);
  if (a.ok()) K().scale(x, float(s), N);
  return undefined(env);
}

napi_value SetThreads(napi_env env, napi_callback_info info) {
  Args a(env, info, "setThreads", 1);
  const int64_t n = a.size(0, "n");
  if (a.ok() && (n < 1 || n > 256)) a.fail("thread count must be between 1 and 256, got %lld", static_cast<long long>(n));
  if (a.ok()) pool_set_threads(static_cast<int>(n));
  return undefined(env);
}

napi_value GetThreads(napi_env env, napi_callback_info) { return number(env, pool_threads()); }

napi_value SetMatmulBf16(napi_env env, napi_callback_info info) {
  Args a(env, info, "setMatmulBf16", 1);
  const bool on = a.flag(0, "on");
  if (a.ok()) set_matmul_bf16(on);
  return undefined(env);
}

napi_value GetMatmulBf16(napi_env env, napi_callback_info) {
  napi_value b;
  napi_get_boolean(env, matmul_bf16(), &b);
  return b;
}

napi_value Isa(napi_env env, napi_callback_info) {
  napi_value s;
  napi_create_string_utf8(env, K().isa, NAPI_AUTO_LENGTH, &s);
  return s;
}

void set_number(napi_env env, napi_value obj, const char* key, double x) {
  napi_set_named_property(env, obj, key, number(env, x));
}

void set_string(napi_env env, napi_value obj, const char* key, const char* s) {
  napi_value v;
  napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, key, v);
}

/**
 * { isa, cache: {l1d, l2, l3, l3Sharing, source}, gemm: {mr, nr, kc, mc, nc, blocks},
 *   bf16: {kernel, source, dpbf16, amx, probeGflops: {f32, fma, dpbf16, amx}} }: what a machine line needs to say which kernels
 * ran. The first call runs the bf16 probe (a few ms) unless a bf16 GEMM already did.
 */
napi_value KernelInfo(napi_env env, napi_callback_info) {
  GemmInfo g{};
  K().gemm_info(&g);
  const CacheSizes& cs = cache_sizes();
  napi_value info, cache, gemm, bf16, probe, flag;
  napi_create_object(env, &info);
  napi_create_object(env, &cache);
  napi_create_object(env, &gemm);
  napi_create_object(env, &bf16);
  napi_create_object(env, &probe);
  set_string(env, info, "isa", K().isa);
  set_number(env, cache, "l1d", double(cs.l1d));
  set_number(env, cache, "l2", double(cs.l2));
  set_number(env, cache, "l3", double(cs.l3));
  set_number(env, cache, "l3Sharing", double(cs.l3_sharing));
  set_string(env, cache, "source", cs.source);
  set_number(env, gemm, "mr", double(g.mr));
  set_number(env, gemm, "nr", double(g.nr));
  set_number(env, gemm, "kc", double(g.kc));
  set_number(env, gemm, "mc", double(g.mc));
  set_number(env, gemm, "nc", double(g.nc));
  set_string(env, gemm, "blocks", g.blocks);
  set_string(env, bf16, "kernel", g.bf16_kernel);
  set_string(env, bf16, "source", g.bf16_source);
  napi_get_boolean(env, g.dpbf16, &flag);
  napi_set_named_property(env, bf16, "dpbf16", flag);
  napi_get_boolean(env, g.amx, &flag);
  napi_set_named_property(env, bf16, "amx", flag);
  set_number(env, probe, "f32", g.probe_f32);
  set_number(env, probe, "fma", g.probe_fma);
  set_number(env, probe, "dpbf16", g.probe_dpbf16);
  set_number(env, probe, "amx", g.probe_amx);
  napi_set_named_property(env, bf16, "probeGflops", probe);
  napi_set_named_property(env, info, "cache", cache);
  napi_set_named_property(env, info, "gemm", gemm);
  napi_set_named_property(env, info, "bf16", bf16);
  return info;
}

/** a string argument, or nullptr for null/undefined; `buf` holds it */
const char* optional_string(napi_env env, napi_value v, char* buf, size_t n, bool* ok) {
  napi_valuetype vt;
  napi_typeof(env, v, &vt);
  if (vt == napi_null || vt == napi_undefined) return nullptr;
  size_t len = 0;
  if (vt != napi_string || napi_get_value_string_utf8(env, v, buf, n, &len) != napi_ok || len + 1 >= n) {
    *ok = false;
    return nullptr;
  }
  return buf;
}

/** configureGemm(bf16Kernel: 'auto'|'fma'|'dpbf16'|'amx'|null, blocks: 'derived'|'fixed'|'KC,MC,NC'|null): diagnostics */
napi_value ConfigureGemm(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  char kbuf[32] = {0}, bbuf[64] = {0};
  bool ok = true;
  const char* kernel = argc > 0 ? optional_string(env, argv[0], kbuf, sizeof kbuf, &ok) : nullptr;
  const char* blocks = argc > 1 ? optional_string(env, argv[1], bbuf, sizeof bbuf, &ok) : nullptr;
  if (!ok || !K().gemm_configure(kernel, blocks)) {
    char msg[200];
    std::snprintf(msg, sizeof msg,
                  "orpo native configureGemm: want bf16Kernel auto, fma, dpbf16 or amx (dpbf16 only where the CPU has "
                  "AVX512_BF16, amx only with usable AMX tiles) and blocks derived, fixed or KC,MC,NC");
    napi_throw_range_error(env, "ERR_ORPO_NATIVE_ARGUMENT", msg);
  }
  return undefined(env);
}

napi_value FmaPeak(napi_env env, napi_callback_info info) {
  Args a(env, info, "fmaPeakGflops", 1);
  const int64_t threads = a.size(0, "threads");
  if (a.ok() && (threads < 1 || threads > 256)) a.fail("threads must be between 1 and 256");
  if (!a.ok()) return undefined(env);
  const int previous = pool_threads();
  if (threads > previous) pool_set_threads(static_cast<int>(threads));
  const double g = K().fma_peak_gflops(static_cast<int>(threads));
  if (threads > previous) pool_set_threads(previous);
  return number(env, g);
}

napi_value Init(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"gemm", nullptr, Gemm, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"matmulForward", nullptr, MatmulForward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"matmulBackward", nullptr, MatmulBackward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"matmulForwardBf16", nullptr, MatmulForwardBf16, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"matmulBackwardBf16", nullptr, MatmulBackwardBf16, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"embeddingForwardBf16", nullptr, EmbeddingForwardBf16, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"embeddingForward", nullptr, EmbeddingForward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"embeddingBackward", nullptr, EmbeddingBackward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"layernormForward", nullptr, LayernormForward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"layernormBackward", nullptr, LayernormBackward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"rmsnormForward", nullptr, RmsnormForward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"rmsnormBackward", nullptr, RmsnormBackward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"ropeForward", nullptr, RopeForward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"ropeBackward", nullptr, RopeBackward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"attentionForward", nullptr, AttentionForward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"attentionBackward", nullptr, AttentionBackward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"attentionDecode", nullptr, AttentionDecode, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"swigluForward", nullptr, SwigluForward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"swigluBackward", nullptr, SwigluBackward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"geluForward", nullptr, GeluForward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"geluBackward", nullptr, GeluBackward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"add", nullptr, Add, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"axpy", nullptr, Axpy, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"zero", nullptr, Zero, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"dropoutForward", nullptr, DropoutForward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"dropoutBackward", nullptr, DropoutBackward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"logprobForward", nullptr, LogprobForward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"logitsStats", nullptr, LogitsStats, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"logprobBackward", nullptr, LogprobBackward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"adamwStep", nullptr, AdamwStep, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sumSquares", nullptr, SumSquares, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"scale", nullptr, Scale, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"setThreads", nullptr, SetThreads, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"getThreads", nullptr, GetThreads, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"setMatmulBf16", nullptr, SetMatmulBf16, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"getMatmulBf16", nullptr, GetMatmulBf16, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"isa", nullptr, Isa, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"fmaPeakGflops", nullptr, FmaPeak, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"kernelInfo", nullptr, KernelInfo, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"configureGemm", nullptr, ConfigureGemm, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

}  // namespace
}  // namespace orpo

NAPI_MODULE(NODE_GYP_MODULE_NAME, orpo::Init)
