// The kernel interface: every piece of arithmetic a training step needs.
//
// Conventions (llm.c style):
// - buffers are flat and row-major, owned by the backend (typed arrays on the CPU, GPU buffers on WebGPU); shapes
//   are written in the comment above each kernel;
// - arguments are outputs first, then inputs, then sizes;
// - gradients are prefixed `d` and ACCUMULATED (+=) unless the comment says "written";
//   a null gradient output means "not needed" (frozen parameter, e.g. under LoRA) and is skipped;
// - forward kernels save what backward needs in named outputs (mean/rstd for norms, lse for attention);
// - the TypeScript backend (`js/`) accepts Float32Array or Float64Array (float64 is used by the
//   finite-difference tests); the native backend takes Float32Array only.
//
// Views are fine everywhere (the native backend reads byteOffset, WebGPU passes element offsets), which is how
// GPT-2's fused qkv projection feeds attention without a copy (q, k, v are views with a row stride of 3C).

export type FloatArray = Float32Array | Float64Array;

/**
 * The kernel interface over the buffers of one backend: F is its float buffer (a typed array on the CPU backends,
 * a GpuTensor view on WebGPU), I its int32 buffer. The backend owns its memory (tinygrad's Allocator): buffers are
 * allocated, viewed, uploaded and downloaded only through it, so model, loss, optimiser and trainer code written
 * against Backend<F, I> runs unchanged on every backend. On the CPU backends every call has run when it returns;
 * on a GPU calls are recorded and run in order, and `download` is the one point that waits for them.
 */
export interface Backend<F, I> {
  readonly name: string;

  // ---------------------------------------------------------------- memory
  /** a zero-filled float buffer of n elements */
  allocFloats(n: number): F;
  /** a zero-filled int32 buffer of n elements */
  allocInts(n: number): I;
  /** elements [offset, offset + length) of x, sharing its memory (TypedArray.subarray) */
  view(x: F, offset: number, length: number): F;
  viewInts(x: I, offset: number, length: number): I;
  /** gives back a buffer allocFloats or allocInts returned (not a view); the CPU backends leave it to the GC */
  free(x: F | I): void;
  /** the number of elements of a buffer or view */
  lengthOf(x: F | I): number;
  /** dst (n) = src (n), from host memory; later calls see the new contents */
  upload(dst: F, src: FloatArray): void;
  uploadInts(dst: I, src: Int32Array): void;
  /**
   * src's contents once every call before this one has run. The one awaited point of a step. On the CPU backends
   * the result IS src (no copy): valid until the buffer is next written; copy it to keep it.
   */
  download(src: F): Promise<Float32Array>;
  downloadInts(src: I): Promise<Int32Array>;

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
  gemm(c: F, a: F, b: F, M: number, N: number, K: number,
    transA: boolean, transB: boolean, accumulate: boolean): void;

  /** inp (N,C), weight (OC,C), bias (OC) | null -> out (N,OC) written: out = inp @ weight^T + bias */
  matmulForward(out: F, inp: F, weight: F, bias: F | null,
    N: number, C: number, OC: number): void;
  /**
   * dout (N,OC), inp (N,C), weight (OC,C) -> dinp (N,C) accumulated, or written when not `accumulate`; dweight (OC,C),
   * dbias (OC) accumulated; each optional. Written is for a buffer's first contribution: no zeroing pass over it
   * first, and the product does not read it (as llm.c's "=" for activation gradients).
   */
  matmulBackward(dinp: F | null, dweight: F | null, dbias: F | null,
    dout: F, inp: F, weight: F, N: number, C: number, OC: number, accumulate: boolean): void;

  // ---------------------------------------------------------------- frozen bfloat16 weights (torch_dtype bfloat16)
  // A weight stored in bfloat16 (Bf16Buffer) is frozen (LoRA's base): it has no gradient. Its products are bf16
  // products whatever setMatmulBf16 says, as a bf16 Linear in PyTorch: the float32 operand is rounded to bfloat16
  // (nearest, ties to even), the weight already is, products are summed in float32 (JS: float64). The numbers
  // are exactly those of matmulForward/Backward with setMatmulBf16(true) on the weight widened to float32.
  /** inp (N,C), weight (OC,C) bf16, bias (OC) | null -> out (N,OC) written: out = bf16(inp) @ weight^T + bias */
  matmulForwardBf16(out: F, inp: F, weight: Bf16Buffer<F>, bias: F | null, N: number, C: number, OC: number): void;
  /** dout (N,OC), weight (OC,C) bf16 -> dinp (N,C): dinp += bf16(dout) @ weight, or = when not `accumulate` */
  matmulBackwardBf16(dinp: F, dout: F, weight: Bf16Buffer<F>, N: number, C: number, OC: number, accumulate: boolean): void;
  /** ids (N) int32, table (V,C) bf16 -> out (N,C): out = table[ids] widened (written), or out += it when `accumulate` */
  embeddingForwardBf16(out: F, ids: I, table: Bf16Buffer<F>, N: number, C: number, accumulate: boolean): void;

  // ---------------------------------------------------------------- embeddings
  /** ids (N) int32, table (V,C) -> out (N,C): out = table[ids] (written), or out += table[ids] when `accumulate` */
  embeddingForward(out: F, ids: I, table: F, N: number, C: number, accumulate: boolean): void;
  /** dout (N,C), ids (N) -> dtable (V,C) accumulated (scatter-add) */
  embeddingBackward(dtable: F, dout: F, ids: I, N: number, C: number): void;

  // ---------------------------------------------------------------- normalisation
  /** inp (N,C), weight (C), bias (C) -> out (N,C) written, mean (N), rstd (N) saved for backward */
  layernormForward(out: F, mean: F, rstd: F, inp: F, weight: F,
    bias: F, N: number, C: number, eps: number): void;
  /** dout (N,C), inp, weight, mean, rstd -> dinp (N,C), dweight (C), dbias (C) accumulated */
  layernormBackward(dinp: F, dweight: F | null, dbias: F | null, dout: F,
    inp: F, weight: F, mean: F, rstd: F, N: number, C: number): void;
  /** inp (N,C), weight (C) -> out (N,C) written, rstd (N) saved: out = weight * inp / sqrt(mean(inp^2) + eps) */
  rmsnormForward(out: F, rstd: F, inp: F, weight: F, N: number, C: number, eps: number): void;
  /** dout (N,C), inp, weight, rstd -> dinp (N,C), dweight (C) accumulated */
  rmsnormBackward(dinp: F, dweight: F | null, dout: F, inp: F, weight: F,
    rstd: F, N: number, C: number): void;

  // ---------------------------------------------------------------- rotary position embedding (rotate-half)
  /**
   * inp (B,T,H,HD), cos/sin (P,HD/2) tables by position -> out (B,T,H,HD) written (out may alias inp).
   * The token at time t has position pos0 + t.
   * out[i] = x[i] cos - x[i+HD/2] sin ; out[i+HD/2] = x[i+HD/2] cos + x[i] sin   (i < HD/2)
   */
  ropeForward(out: F, inp: F, cos: F, sin: F,
    B: number, T: number, H: number, HD: number, pos0: number): void;
  /** dout (B,T,H,HD) -> dinp (B,T,H,HD) accumulated, or written when not `accumulate` (the transpose of the rotation) */
  ropeBackward(dinp: F, dout: F, cos: F, sin: F,
    B: number, T: number, H: number, HD: number, pos0: number, accumulate: boolean): void;

  // ---------------------------------------------------------------- causal self-attention
  /**
   * q (B,T,NH,HD) rows `qStride` apart, k/v (B,T,NKV,HD) rows `kvStride` apart (grouped-query: query head h
   * reads kv head h / (NH/NKV)) -> out (B,T,NH,HD) contiguous, written; lse (B,NH,T) log-sum-exp of each
   * score row, saved for backward. Causal, scale 1/sqrt(HD). Only one row/tile of scores exists at a time.
   * `hidden` (B,2) int32, optional: in row b, keys [hidden[2b], hidden[2b+1]) are invisible to queries at
   * t >= hidden[2b+1] (two continuations of one shared prefix in one row: the second must not see the first).
   */
  attentionForward(out: F, lse: F, q: F, k: F, v: F,
    B: number, T: number, NH: number, NKV: number, HD: number, qStride: number, kvStride: number,
    hidden?: I | null): void;
  /** dout (B,T,NH,HD), q, k, v, out, lse, hidden -> dq, dk, dv accumulated (same layouts and strides as q, k, v) */
  attentionBackward(dq: F, dk: F, dv: F, dout: F,
    q: F, k: F, v: F, out: F, lse: F,
    B: number, T: number, NH: number, NKV: number, HD: number, qStride: number, kvStride: number,
    hidden?: I | null): void;

  /**
   * Generation over a key/value cache (forward only): q (T,NH,HD) rows qStride apart at positions pos0..pos0+T-1,
   * k/v (pos0+T,NKV,HD) rows kvStride apart -> out (T,NH,HD) written; causal, scale 1/sqrt(HD).
   */
  attentionDecode(out: F, q: F, k: F, v: F, T: number, pos0: number,
    NH: number, NKV: number, HD: number, qStride: number, kvStride: number): void;

  // ---------------------------------------------------------------- pointwise
  /** gate (N), up (N) -> out (N) written: out = silu(gate) * up */
  swigluForward(out: F, gate: F, up: F, N: number): void;
  /** dout (N), gate, up -> dgate (N), dup (N) accumulated, or written when not `accumulate` */
  swigluBackward(dgate: F, dup: F, dout: F, gate: F, up: F, N: number, accumulate: boolean): void;
  /** inp (N) -> out (N) written: GELU, tanh approximation (gelu_new / gelu_pytorch_tanh) */
  geluForward(out: F, inp: F, N: number): void;
  /** dout (N), inp (N) -> dinp (N) accumulated, or written when not `accumulate` */
  geluBackward(dinp: F, dout: F, inp: F, N: number, accumulate: boolean): void;
  /** a (N), b (N) -> out (N) written: out = a + b (out may alias a or b); the residual connection */
  add(out: F, a: F, b: F, N: number): void;
  /** src (N) -> dst (N): dst += scale * src */
  axpy(dst: F, src: F, scale: number, N: number): void;

  // ---------------------------------------------------------------- loss head
  /**
   * logits (N,V), targets (N) int32 (-1 = no target) -> logp (N) written: log_softmax(logits)[target]
   * (0 where no target), lse (N) log-sum-exp of each row, saved for backward. Rows subtract their max.
   */
  logprobForward(logp: F, lse: F, logits: F, targets: I, N: number, V: number): void;
  /**
   * logits (N,V) -> mean (N) written: the mean of each row over the vocabulary (summed in float64 by the JS
   * backend, float64 lanes natively), argmax (N) int32 written: the index of the row's FIRST maximal value, as
   * torch.argmax. For TRL's `logits/chosen|rejected` and SFT's `mean_token_accuracy`. V >= 1 when N > 0; a row
   * holding NaN gets a NaN mean and an unspecified (but in-range) argmax.
   */
  logitsStats(mean: F, argmax: I, logits: F, N: number, V: number): void;
  /**
   * dlogp (N), logits (N,V), lse (N), targets -> dlogits (N,V) WRITTEN (not accumulated):
   * dlogits = dlogp * (onehot(target) - softmax(logits)); zero rows without target. dlogits may alias logits.
   */
  logprobBackward(dlogits: F, dlogp: F, logits: F, lse: F, targets: I,
    N: number, V: number): void;

  // ---------------------------------------------------------------- optimizer
  /**
   * torch.optim.AdamW on one flat buffer: params (N), grads (N), m (N), v (N) updated in place.
   * Decoupled weight decay p -= lr*wd*p, then Adam with bias correction; `step` counts from 1.
   */
  adamwStep(params: F, grads: F, m: F, v: F, N: number,
    lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number): void;
  /** x (N) -> out (1) written: the sum of squares (float64 accumulation on the CPU backends) */
  sumSquaresInto(out: F, x: F, N: number): void;
  /** x (N) *= s in place */
  scale(x: F, s: number, N: number): void;

  // ---------------------------------------------------------------- data movement (what used to be host loops)
  /** x (N) = 0 */
  zero(x: F, N: number): void;
  /** inp (*,C), rows (M) int32 -> out (M,C) written: out[i] = inp[rows[i]] (the loss head's scored rows, packed RoPE tables) */
  gatherRows(out: F, inp: F, rows: I, M: number, C: number): void;
  /** dout (M,C), rows (M) -> dinp (*,C) accumulated: dinp[rows[i]] += dout[i]; a row listed twice gets both */
  scatterAddRows(dinp: F, dout: F, rows: I, M: number, C: number): void;
  /** x (M,C), s (M) -> x (M,C) in place: row i scaled by s[i] */
  scaleRows(x: F, s: F, M: number, C: number): void;
  /** src (n rows of `width`, srcStride apart) -> dst (n rows, dstStride apart) written: the KV cache's row copies */
  copyRows(dst: F, src: F, n: number, width: number, dstStride: number, srcStride: number): void;
  /**
   * inp (N) -> out (N) written: inverted dropout as torch.nn.Dropout, kept elements scaled by 1/(1-p). The mask is
   * a hash of (key, element index) (dropoutKeeps), so backward and a recomputed forward draw the same one.
   */
  dropoutForward(out: F, inp: F, N: number, key: number, p: number): void;
  /** dout (N) -> dinp (N) accumulated, through the mask of (key, p) */
  dropoutBackward(dinp: F, dout: F, N: number, key: number, p: number): void;
}

/**
 * `length` bfloat16 values held two to a 32-bit element of a backend float buffer: value 2i in the low half of
 * element i (little-endian: the values lie in memory in order, as a Uint16Array over the same bytes would read
 * them), an odd last value with a zero high half. Only bit patterns travel (upload/download of float buffers copy
 * bytes: NaN payloads and all), so every backend stores bf16 in the float buffers it already has.
 */
export class Bf16Buffer<F> {
  constructor(readonly data: F, readonly length: number) {}
}

/** the 32-bit elements `n` bfloat16 values take */
export function bf16Elements(n: number): number {
  return Math.ceil(n / 2);
}

/** a zeroed buffer of n bfloat16 values from backend k */
export function allocBf16<F, I>(k: Backend<F, I>, n: number): Bf16Buffer<F> {
  return new Bf16Buffer(k.allocFloats(bf16Elements(n)), n);
}

/** values [offset, offset + length) of x, sharing its memory; offset must be even (a whole 32-bit element) */
export function viewBf16<F, I>(k: Backend<F, I>, x: Bf16Buffer<F>, offset: number, length: number): Bf16Buffer<F> {
  if (offset % 2 !== 0 || offset < 0 || offset + length > x.length) {
    throw new RangeError(`viewBf16: [${offset}, ${offset + length}) of ${x.length} bfloat16 values (the offset must be even)`);
  }
  return new Bf16Buffer(k.view(x.data, offset / 2, bf16Elements(length)), length);
}

/** the bit patterns (length) as the float32 elements that hold them (no copy); pads an odd length with a zero */
export function bf16Carrier(bits: Uint16Array): Float32Array {
  if (bits.length % 2 !== 0 || bits.byteOffset % 4 !== 0) {
    const padded = new Uint16Array(bits.length + (bits.length % 2));
    padded.set(bits);
    bits = padded;
  }
  return new Float32Array(bits.buffer, bits.byteOffset, bits.length / 2);
}

/** dst = the bfloat16 bit patterns bits (dst.length of them) */
export function uploadBf16<F, I>(k: Backend<F, I>, dst: Bf16Buffer<F>, bits: Uint16Array): void {
  if (bits.length !== dst.length) throw new RangeError(`uploadBf16: ${bits.length} values into a buffer of ${dst.length}`);
  k.upload(dst.data, bf16Carrier(bits));
}

/** the bit patterns src holds, once every call before this one has run (a copy: the download itself may be reused) */
export async function downloadBf16<F, I>(k: Backend<F, I>, src: Bf16Buffer<F>): Promise<Uint16Array> {
  const carrier = await k.download(src.data);
  return new Uint16Array(carrier.buffer, carrier.byteOffset, src.length).slice();
}

/** A weight as the model holds it: float32 (trainable or not), or frozen bfloat16. */
export type Weight<F> = F | Bf16Buffer<F>;

export function isBf16<F>(w: Weight<F>): w is Bf16Buffer<F> {
  return w instanceof Bf16Buffer;
}

/** inp (N,C), weight (OC,C) float32 or frozen bfloat16, bias (OC) | null -> out (N,OC) written */
export function linearForward<F, I>(k: Backend<F, I>, out: F, inp: F, weight: Weight<F>, bias: F | null,
  N: number, C: number, OC: number): void {
  if (isBf16(weight)) k.matmulForwardBf16(out, inp, weight, bias, N, C, OC);
  else k.matmulForward(out, inp, weight, bias, N, C, OC);
}

/**
 * dout (N,OC), inp (N,C), weight (OC,C) -> dinp accumulated (written when not `accumulate`), dweight, dbias
 * accumulated, each optional. A bfloat16 weight is frozen: asking for its gradient is a bug, not a request to ignore.
 */
export function linearBackward<F, I>(k: Backend<F, I>, dinp: F | null, dweight: F | null, dbias: F | null, dout: F, inp: F,
  weight: Weight<F>, N: number, C: number, OC: number, accumulate: boolean): void {
  if (!isBf16(weight)) {
    k.matmulBackward(dinp, dweight, dbias, dout, inp, weight, N, C, OC, accumulate);
    return;
  }
  if (dweight || dbias) throw new Error('linearBackward: a bfloat16 weight is frozen; it has no weight or bias gradient');
  if (dinp) k.matmulBackwardBf16(dinp, dout, weight, N, C, OC, accumulate);
}

/**
 * The CPU backends' interface (TypeScript reference and native addon): buffers are typed arrays, so views are
 * subarrays, uploads are copies, and a sum of squares can be returned at once. The TypeScript backend accepts
 * Float64Array too (finite-difference tests); the native backend takes Float32Array only.
 */
export interface Kernels extends Backend<Float32Array, Int32Array> {
  /** x (N) -> sum of squares, accumulated in float64 */
  sumSquares(x: FloatArray, N: number): number;
}

/** The TypeScript backend's kernels typed for what they accept: Float64Array as well (finite-difference tests). */
export type ReferenceKernels = Kernels & Backend<FloatArray, Int32Array>;

/** whether a backend computes in host memory (the CPU backends), where a sum of squares can be had at once */
export function isHostBackend<F, I>(k: Backend<F, I>): k is Backend<F, I> & Kernels {
  return typeof (k as Partial<Kernels>).sumSquares === 'function';
}

// A 32-bit integer hash (the "lowbias32" finaliser): well mixed enough that hash(key ^ i) >= p * 2^32 is an
// unbiased, independent keep decision per element, and cheap enough to recompute in backward. Every backend's
// dropout uses exactly this (the WGSL kernel has the same lines), so the masks agree bit for bit.
export function mix32(x: number): number {
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x21f0aaad) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, 0x735a2d97) >>> 0;
  return (x ^ (x >>> 15)) >>> 0;
}

/** whether dropout with mask key `key` keeps element i (threshold = p * 2^32) */
export function dropoutKeeps(key: number, i: number, threshold: number): boolean {
  return mix32(key ^ Math.imul(i, 0x9e3779b9)) >= threshold;
}
