// RMSNorm (Llama family): inp (N,C), weight (C) -> out (N,C) = weight * inp * rstd; rstd (N) saved for backward.
import type { FloatArray } from '../kernels.js';

export function rmsnormForward(out: FloatArray, rstd: FloatArray, inp: FloatArray, weight: FloatArray,
  N: number, C: number, eps: number): void {
  for (let n = 0; n < N; n++) {
    const o = n * C;
    let ss = 0;
    for (let c = 0; c < C; c++) ss += inp[o + c] * inp[o + c];
    const s = 1 / Math.sqrt(ss / C + eps);
    for (let c = 0; c < C; c++) out[o + c] = weight[c] * (inp[o + c] * s);
    rstd[n] = s;
  }
}

// dout (N,C), inp, weight, rstd -> dinp (N,C), dweight (C) accumulated
export function rmsnormBackward(dinp: FloatArray, dweight: FloatArray | null, dout: FloatArray, inp: FloatArray,
  weight: FloatArray, rstd: FloatArray, N: number, C: number): void {
  for (let n = 0; n < N; n++) {
    const o = n * C;
    const s = rstd[n];
    // y = w * x * s, s = (mean(x^2)+eps)^-1/2 ; dx = s * (w*dy) - x * s^3 * mean(w*dy*x)
    let dot = 0;
    for (let c = 0; c < C; c++) dot += dout[o + c] * weight[c] * inp[o + c];
    const k = (dot / C) * s * s * s;
    for (let c = 0; c < C; c++) {
      if (dweight) dweight[c] += dout[o + c] * inp[o + c] * s;
      dinp[o + c] += s * dout[o + c] * weight[c] - inp[o + c] * k;
    }
  }
}
