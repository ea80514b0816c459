// The kernel interface: every piece of arithmetic a training step needs.
//
// Conventions (llm.c style):
// - buffers are flat, row-major typed arrays; shapes are written in the comment above each kernel;
// - arguments are outputs first, then inputs, then sizes;
// - gradients are prefixed `d` and ACCUMULATED (+=) unless the comment says "written";
//   a null gradient output means "not needed" (frozen parameter, e.g. under LoRA) and is skipped;
// - forward kernels save what backward needs in named outputs (mean/rstd for norms, lse for attention);
// - the TypeScript backend (`js/`) accepts Float32Array or Float64Array (float64 is used by the
//   finite-difference tests); the native backend takes Float32Array only.
//
// Subarray views are fine everywhere (the native backend reads byteOffset), which is how GPT-2's fused
// qkv projection feeds attention without a copy (q, k, v are views with a row stride of 3C).

export type FloatArray = Float32Array | Float64Array;

export interface Kernels {
  readonly name: string;

  /** Number of threads the backend may use (the JS backend always runs on one). */
  setThreads(n: number): void;
  getThreads(): number;
  /**
   * Mixed precision for the matrix products (gemm, matmulForward/Backward), as PyTorch's bf16 autocast and TRL's
   * `bf16`: each operand element is rounded to bfloat16 (nearest, ties to even), products are summed in float32
   * (JS: float64) and stored in the output's precision. Everything else stays float32. Off by default.
   */
  setMatmulBf16(on: boolean): void;
  getMatmulBf16(): boolean;

  // ---------------------------------------------------------------- matrix products
  /**
   * c (M,N) = op(a) (M,K) @ op(b) (K,N), plus c's previous contents when `accumulate`.
   * transA: a is stored (K,M); transB: b is stored (N,K). All row-major.
   */
  gemm(c: FloatArray, a: FloatArray, b: FloatArray, M: number, N: number, K: number,
    transA: boolean, transB: boolean, accumulate: boolean): void;

  /** inp (N,C), weight (OC,C), bias (OC) | null -> out (N,OC) written: out = inp @ weight^T + bias */
  matmulForward(out: FloatArray, inp: FloatArray, weight: FloatArray, bias: FloatArray | null,
    N: number, C: number, OC: number): void;
  /** dout (N,OC), inp (N,C), weight (OC,C) -> dinp (N,C), dweight (OC,C), dbias (OC), each accumulated, each optional */
  matmulBackward(dinp: FloatArray | null, dweight: FloatArray | null, dbias: FloatArray | null,
    dout: FloatArray, inp: FloatArray, weight: FloatArray, N: number, C: number, OC: number): void;

  // ---------------------------------------------------------------- embeddings
  /** ids (N) int32, table (V,C) -> out (N,C): out = table[ids] (written), or out += table[ids] when `accumulate` */
  embeddingForward(out: FloatArray, ids: Int32Array, table: FloatArray, N: number, C: number, accumulate: boolean): void;
  /** dout (N,C), ids (N) -> dtable (V,C) accumulated (scatter-add) */
  embeddingBackward(dtable: FloatArray, dout: FloatArray, ids: Int32Array, N: number, C: number): void;

  // ---------------------------------------------------------------- normalisation
  /** inp (N,C), weight (C), bias (C) -> out (N,C) written, mean (N), rstd (N) saved for backward */
  layernormForward(out: FloatArray, mean: FloatArray, rstd: FloatArray, inp: FloatArray, weight: FloatArray,
    bias: FloatArray, N: number, C: number, eps: number): void;
  /** dout (N,C), inp, weight, mean, rstd -> dinp (N,C), dweight (C), dbias (C) accumulated */
  layernormBackward(dinp: FloatArray, dweight: FloatArray | null, dbias: FloatArray | null, dout: FloatArray,
    inp: FloatArray, weight: FloatArray, mean: FloatArray, rstd: FloatArray, N: number, C: number): void;
  /** inp (N,C), weight (C) -> out (N,C) written, rstd (N) saved: out = weight * inp / sqrt(mean(inp^2) + eps) */
  rmsnormForward(out: FloatArray, rstd: FloatArray, inp: FloatArray, weight: FloatArray, N: number, C: number, eps: number): void;
  /** dout (N,C), inp, weight, rstd -> dinp (N,C), dweight (C) accumulated */
  rmsnormBackward(dinp: FloatArray, dweight: FloatArray | null, dout: FloatArray, inp: FloatArray, weight: FloatArray,
    rstd: FloatArray, N: number, C: number): void;

  // ---------------------------------------------------------------- rotary position embedding (rotate-half)
  /**
   * inp (B,T,H,HD), cos/sin (P,HD/2) tables by position -> out (B,T,H,HD) written (out may alias inp).
   * The token at time t has position pos0 + t.
   * out[i] = x[i] cos - x[i+HD/2] sin ; out[i+HD/2] = x[i+HD/2] cos + x[i] sin   (i < HD/2)
   */
  ropeForward(out: FloatArray, inp: FloatArray, cos: FloatArray, sin: FloatArray,
    B: number, T: number, H: number, HD: number, pos0: number): void;
  /** dout (B,T,H,HD) -> dinp (B,T,H,HD) accumulated (the transpose of the rotation) */
  ropeBackward(dinp: FloatArray, dout: FloatArray, cos: FloatArray, sin: FloatArray,
    B: number, T: number, H: number, HD: number, pos0: number): void;

  // ---------------------------------------------------------------- causal self-attention
  /**
   * q (B,T,NH,HD) rows `qStride` apart, k/v (B,T,NKV,HD) rows `kvStride` apart (grouped-query: query head h
   * reads kv head h / (NH/NKV)) -> out (B,T,NH,HD) contiguous, written; lse (B,NH,T) log-sum-exp of each
   * score row, saved for backward. Causal, scale 1/sqrt(HD). Only one row/tile of scores exists at a time.
   * `hidden` (B,2) int32, optional: in row b, keys [hidden[2b], hidden[2b+1]) are invisible to queries at
   * t >= hidden[2b+1] (two continuations of one shared prefix in one row: the second must not see the first).
   */
  attentionForward(out: FloatArray, lse: FloatArray, q: FloatArray, k: FloatArray, v: FloatArray,
    B: number, T: number, NH: number, NKV: number, HD: number, qStride: number, kvStride: number,
    hidden?: Int32Array | null): void;
  /** dout (B,T,NH,HD), q, k, v, out, lse, hidden -> dq, dk, dv accumulated (same layouts and strides as q, k, v) */
  attentionBackward(dq: FloatArray, dk: FloatArray, dv: FloatArray, dout: FloatArray,
    q: FloatArray, k: FloatArray, v: FloatArray, out: FloatArray, lse: FloatArray,
    B: number, T: number, NH: number, NKV: number, HD: number, qStride: number, kvStride: number,
    hidden?: Int32Array | null): void;

  /**
   * Generation over a key/value cache (forward only): q (T,NH,HD) rows qStride apart at positions pos0..pos0+T-1,
   * k/v (pos0+T,NKV,HD) rows kvStride apart -> out (T,NH,HD) written; causal, scale 1/sqrt(HD).
   */
  attentionDecode(out: FloatArray, q: FloatArray, k: FloatArray, v: FloatArray, T: number, pos0: number,
    NH: number, NKV: number, HD: number, qStride: number, kvStride: number): void;

  // ---------------------------------------------------------------- pointwise
  /** gate (N), up (N) -> out (N) written: out = silu(gate) * up */
  swigluForward(out: FloatArray, gate: FloatArray, up: FloatArray, N: number): void;
  /** dout (N), gate, up -> dgate (N), dup (N) accumulated */
  swigluBackward(dgate: FloatArray, dup: FloatArray, dout: FloatArray, gate: FloatArray, up: FloatArray, N: number): void;
  /** inp (N) -> out (N) written: GELU, tanh approximation (gelu_new / gelu_pytorch_tanh) */
  geluForward(out: FloatArray, inp: FloatArray, N: number): void;
  /** dout (N), inp (N) -> dinp (N) accumulated */
  geluBackward(dinp: FloatArray, dout: FloatArray, inp: FloatArray, N: number): void;
  /** a (N), b (N) -> out (N) written: out = a + b (out may alias a or b); the residual connection */
  add(out: FloatArray, a: FloatArray, b: FloatArray, N: number): void;
  /** src (N) -> dst (N): dst += scale * src */
  axpy(dst: FloatArray, src: FloatArray, scale: number, N: number): void;

  // ---------------------------------------------------------------- loss head
  /**
   * logits (N,V), targets (N) int32 (-1 = no target) -> logp (N) written: log_softmax(logits)[target]
   * (0 where no target), lse (N) log-sum-exp of each row, saved for backward. Rows subtract their max.
   */
  logprobForward(logp: FloatArray, lse: FloatArray, logits: FloatArray, targets: Int32Array, N: number, V: number): void;
  /**
   * logits (N,V) -> mean (N) written: the mean of each row over the vocabulary (summed in float64 by the JS
   * backend, float64 lanes natively), argmax (N) int32 written: the index of the row's FIRST maximal value, as
   * torch.argmax. For TRL's `logits/chosen|rejected` and SFT's `mean_token_accuracy`. V >= 1 when N > 0; a row
   * holding NaN gets a NaN mean and an unspecified (but in-range) argmax.
   */
  logitsStats(mean: FloatArray, argmax: Int32Array, logits: FloatArray, N: number, V: number): void;
  /**
   * dlogp (N), logits (N,V), lse (N), targets -> dlogits (N,V) WRITTEN (not accumulated):
   * dlogits = dlogp * (onehot(target) - softmax(logits)); zero rows without target. dlogits may alias logits.
   */
  logprobBackward(dlogits: FloatArray, dlogp: FloatArray, logits: FloatArray, lse: FloatArray, targets: Int32Array,
    N: number, V: number): void;

  // ---------------------------------------------------------------- optimizer
  /**
   * torch.optim.AdamW on one flat buffer: params (N), grads (N), m (N), v (N) updated in place.
   * Decoupled weight decay p -= lr*wd*p, then Adam with bias correction; `step` counts from 1.
   */
  adamwStep(params: FloatArray, grads: FloatArray, m: FloatArray, v: FloatArray, N: number,
    lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number): void;
  /** x (N) -> sum of squares, accumulated in float64 */
  sumSquares(x: FloatArray, N: number): number;
  /** x (N) *= s in place */
  scale(x: FloatArray, s: number, N: number): void;
}
