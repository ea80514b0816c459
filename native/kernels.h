// The native kernel table: one instance per instruction set (portable C++, AVX2+FMA, AVX-512, NEON), all built
// from kernels_impl.h, chosen once at load time by cpu feature detection (see dispatch in addon.cc).
// Semantics, shapes and accumulate-vs-written rules are those of src/backend/kernels.ts; argument lengths are
// validated by the binding before any kernel runs, so kernels trust their sizes.
#pragma once
#include <cstdint>

namespace orpo {

/** How this table's GEMM runs on this CPU: its cache blocks and the bf16 path (see kernels_impl.h). */
struct GemmInfo {
  int64_t mr, nr;          // the micro-tile
  int64_t kc, mc, nc;      // the cache blocks
  const char* blocks;      // where they came from: "cache sizes", "fixed" (no sizes detected, or
                           // ORPO_GEMM_BLOCKS=fixed), "ORPO_GEMM_BLOCKS", "set"
  const char* bf16_kernel; // the bf16 path: "dpbf16" (VDPBF16PS on bf16 pairs), "fma" (operands rounded to
                           // bf16, float32 FMA) or "amx" (TDPBF16PS on AMX tiles, amx.h)
  const char* bf16_source; // "probe", "ORPO_BF16_KERNEL", "set", or "only" (the one path this table has)
  bool dpbf16;             // whether the dpbf16 path can run here
  // the probe's single-thread GFLOP/s (CPU time) on one GEMM per path; 0 where a path was not measured
  double probe_f32, probe_fma, probe_dpbf16;
  bool amx;                // whether the amx path can run here (AMX tiles granted by Linux, start-up check passed)
  double probe_amx;        // the probe's amx GFLOP/s; 0 where it was not measured
};

struct KernelTable {
  const char* isa;
  // c (M,N) [+]= op(a) (M,K) @ op(b) (K,N); transA: a stored (K,M); transB: b stored (N,K)
  void (*gemm)(float* c, const float* a, const float* b, int64_t M, int64_t N, int64_t K, bool transA,
               bool transB, bool accumulate);
  // inp (N,C), weight (OC,C), bias (OC) | null -> out (N,OC) written
  void (*matmul_forward)(float* out, const float* inp, const float* weight, const float* bias, int64_t N,
                         int64_t C, int64_t OC);
  // dout (N,OC), inp (N,C), weight (OC,C) -> dinp (N,C) accumulated (written when !accumulate), dweight (OC,C),
  // dbias (OC) accumulated, each optional
  void (*matmul_backward)(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                          const float* weight, int64_t N, int64_t C, int64_t OC, bool accumulate);
  // Frozen bfloat16 weights (LoRA's base, torch_dtype bfloat16): weight/table are bf16 bit patterns (the top half of a
  // float32), read in place. The products are bf16 products whatever matmul_bf16() says: the float operand rounded to
  // bf16 (nearest even), float32 sums, on the bf16 path the probe chose, so exactly matmul_forward/backward in bf16
  // mode on the widened weight (1..4 rows: the same products, summed in another order).
  // inp (N,C), weight (OC,C) bf16, bias (OC) | null -> out (N,OC) written
  void (*matmul_forward_bf16)(float* out, const float* inp, const uint16_t* weight, const float* bias, int64_t N,
                              int64_t C, int64_t OC);
  // dout (N,OC), weight (OC,C) bf16 -> dinp (N,C) accumulated, or written when !accumulate
  void (*matmul_backward_bf16)(float* dinp, const float* dout, const uint16_t* weight, int64_t N, int64_t C,
                               int64_t OC, bool accumulate);
  // ids (N), table (V,C) bf16 -> out (N,C) = the rows widened, written or accumulated
  void (*embedding_forward_bf16)(float* out, const int32_t* ids, const uint16_t* table, int64_t N, int64_t C,
                                 bool accumulate);
  // ids (N), table (V,C) -> out (N,C) written or accumulated
  void (*embedding_forward)(float* out, const int32_t* ids, const float* table, int64_t N, int64_t C,
                            bool accumulate);
  // dout (N,C), ids (N) -> dtable (V,C) accumulated
  void (*embedding_backward)(float* dtable, const float* dout, const int32_t* ids, int64_t N, int64_t C);
  // inp (N,C), weight (C), bias (C) -> out (N,C) written, mean (N), rstd (N)
  void (*layernorm_forward)(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                            const float* bias, int64_t N, int64_t C, float eps);
  // dout (N,C), inp, weight, mean, rstd -> dinp (N,C), dweight (C) | null, dbias (C) | null accumulated
  void (*layernorm_backward)(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                             const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C);
  // inp (N,C), weight (C) -> out (N,C) written, rstd (N)
  void (*rmsnorm_forward)(float* out, float* rstd, const float* inp, const float* weight, int64_t N, int64_t C,
                          float eps);
  // dout (N,C), inp, weight, rstd -> dinp (N,C), dweight (C) | null accumulated
  void (*rmsnorm_backward)(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                           const float* rstd, int64_t N, int64_t C);
  // inp (B,T,H,HD), cos/sin (P,HD/2) -> out (B,T,H,HD) written (may alias inp)
  void (*rope_forward)(float* out, const float* inp, const float* cos, const float* sin, int64_t B, int64_t T,
                       int64_t H, int64_t HD, int64_t pos0);
  // dout (B,T,H,HD) -> dinp (B,T,H,HD) accumulated, or written when !accumulate
  void (*rope_backward)(float* dinp, const float* dout, const float* cos, const float* sin, int64_t B, int64_t T,
                        int64_t H, int64_t HD, int64_t pos0, bool accumulate);
  // q (B,T,NH,HD) rows qStride apart, k/v (B,T,NKV,HD) rows kvStride apart, hidden (B,2) or null
  //   -> out (B,T,NH,HD), lse (B,NH,T); keys [hidden[2b], hidden[2b+1]) are invisible to queries at t >= hidden[2b+1]
  void (*attention_forward)(float* out, float* lse, const float* q, const float* k, const float* v, int64_t B,
                            int64_t T, int64_t NH, int64_t NKV, int64_t HD, int64_t qStride, int64_t kvStride,
                            const int32_t* hidden);
  // dout, q, k, v, out, lse, hidden -> dq, dk, dv accumulated (layouts of q, k, v)
  void (*attention_backward)(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                             const float* v, const float* out, const float* lse, int64_t B, int64_t T,
                             int64_t NH, int64_t NKV, int64_t HD, int64_t qStride, int64_t kvStride,
                             const int32_t* hidden);
  // generation: q (T,NH,HD) at positions pos0..pos0+T-1, k/v (pos0+T,NKV,HD) rows kvStride apart (a cache)
  //   -> out (T,NH,HD); causal, forward only
  void (*attention_decode)(float* out, const float* q, const float* k, const float* v, int64_t T, int64_t pos0,
                           int64_t NH, int64_t NKV, int64_t HD, int64_t qStride, int64_t kvStride);
  void (*swiglu_forward)(float* out, const float* gate, const float* up, int64_t N);
  // dout, gate, up (N) -> dgate, dup (N) accumulated, or written when !accumulate
  void (*swiglu_backward)(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                          int64_t N, bool accumulate);
  void (*gelu_forward)(float* out, const float* inp, int64_t N);
  // dout, inp (N) -> dinp (N) accumulated, or written when !accumulate
  void (*gelu_backward)(float* dinp, const float* dout, const float* inp, int64_t N, bool accumulate);
  void (*add)(float* out, const float* a, const float* b, int64_t N);
  void (*axpy)(float* dst, const float* src, float scale, int64_t N);
  // x (N) = 0
  void (*zero)(float* x, int64_t N);
  // inp (N) -> out (N) written: inverted dropout with the TypeScript backend's mask (dropoutKeeps: element i kept
  // when mix32(key ^ i * 0x9e3779b9) >= p * 2^32), kept values times 1 / (1 - p) in double, rounded once
  void (*dropout_forward)(float* out, const float* inp, int64_t N, uint32_t key, double p);
  // dout (N) -> dinp (N) accumulated through the same mask: dinp = float(dinp + dout / (1 - p)) in double
  void (*dropout_backward)(float* dinp, const float* dout, int64_t N, uint32_t key, double p);
  // logits (N,V), targets (N) -> logp (N), lse (N)
  void (*logprob_forward)(float* logp, float* lse, const float* logits, const int32_t* targets, int64_t N,
                          int64_t V);
  // logits (N,V) -> mean (N) written (float64 sums), argmax (N) written: first index of the row maximum
  void (*logits_stats)(float* mean, int32_t* argmax, const float* logits, int64_t N, int64_t V);
  // dlogp (N), logits (N,V), lse (N), targets -> dlogits (N,V) written (may alias logits)
  void (*logprob_backward)(float* dlogits, const float* dlogp, const float* logits, const float* lse,
                           const int32_t* targets, int64_t N, int64_t V);
  // torch.optim.AdamW; hyperparameters in double so the bias corrections match the reference exactly
  void (*adamw_step)(float* params, const float* grads, float* m, float* v, int64_t N, double lr, double beta1,
                     double beta2, double eps, double weightDecay, double step);
  double (*sum_squares)(const float* x, int64_t N);
  void (*scale)(float* x, float s, int64_t N);
  // A tight loop of independent fused multiply-adds on `threads` threads: the machine's practical FLOP/s peak.
  double (*fma_peak_gflops)(int threads);
  // The GEMM's blocks and bf16 path; the first call (or the first bf16 GEMM) runs the bf16 probe (a few ms).
  void (*gemm_info)(GemmInfo* out);
  // Diagnostics and tests: bf16 path "auto" (the probe's choice), "fma", "dpbf16" or "amx"; blocks "derived", "fixed" or
  // "KC,MC,NC". Either may be null (unchanged). False, changing nothing, when a value is invalid or unavailable.
  bool (*gemm_configure)(const char* bf16_kernel, const char* blocks);
};

extern const KernelTable kernels_generic;
#if defined(__x86_64__)
extern const KernelTable kernels_avx2;
extern const KernelTable kernels_avx512;
#endif

}  // namespace orpo
