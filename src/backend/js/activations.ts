// Pointwise activations: SwiGLU (Llama MLP) and GELU with the tanh approximation (GPT-2's gelu_new).
import type { FloatArray } from '../kernels.js';

/** silu(x) = x * sigmoid(x); sigmoid written with exp(-|x|) so it never overflows */
function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

// gate (N), up (N) -> out (N) = silu(gate) * up
export function swigluForward(out: FloatArray, gate: FloatArray, up: FloatArray, N: number): void {
  for (let i = 0; i < N; i++) {
    const g = gate[i];
    out[i] = g * sigmoid(g) * up[i];
  }
}

// dout (N), gate, up -> dgate, dup accumulated, or written when not `accumulate` (the reference: zeroed, then added)
export function swigluBackward(dgate: FloatArray, dup: FloatArray, dout: FloatArray, gate: FloatArray,
  up: FloatArray, N: number, accumulate: boolean): void {
  if (!accumulate) {
    dgate.fill(0, 0, N);
    dup.fill(0, 0, N);
  }
  for (let i = 0; i < N; i++) {
    const g = gate[i];
    const sg = sigmoid(g);
    const silu = g * sg;
    dup[i] += dout[i] * silu;
    dgate[i] += dout[i] * up[i] * sg * (1 + g * (1 - sg));
  }
}

const GELU_K = Math.sqrt(2 / Math.PI);

// inp (N) -> out (N) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
export function geluForward(out: FloatArray, inp: FloatArray, N: number): void {
  for (let i = 0; i < N; i++) {
    const x = inp[i];
    out[i] = 0.5 * x * (1 + Math.tanh(GELU_K * (x + 0.044715 * x * x * x)));
  }
}

// dout (N), inp (N) -> dinp accumulated, or written when not `accumulate`
export function geluBackward(dinp: FloatArray, dout: FloatArray, inp: FloatArray, N: number, accumulate: boolean): void {
  if (!accumulate) dinp.fill(0, 0, N);
  for (let i = 0; i < N; i++) {
    const x = inp[i];
    const u = GELU_K * (x + 0.044715 * x * x * x);
    const th = Math.tanh(u);
    const sech2 = 1 - th * th;
    const grad = 0.5 * (1 + th) + 0.5 * x * sech2 * GELU_K * (1 + 3 * 0.044715 * x * x);
    dinp[i] += grad * dout[i];
  }
}

// a (N), b (N) -> out (N) = a + b
export function add(out: FloatArray, a: FloatArray, b: FloatArray, N: number): void {
  for (let i = 0; i < N; i++) out[i] = a[i] + b[i];
}

// dst (N) += scale * src (N)
export function axpy(dst: FloatArray, src: FloatArray, scale: number, N: number): void {
  for (let i = 0; i < N; i++) dst[i] += scale * src[i];
}
