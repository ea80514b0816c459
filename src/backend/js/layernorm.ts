// LayerNorm (GPT-2): inp (N,C), weight (C), bias (C) -> out (N,C); mean (N), rstd (N) saved for backward.
import type { FloatArray } from '../kernels.js';

export function layernormForward(out: FloatArray, mean: FloatArray, rstd: FloatArray, inp: FloatArray,
  weight: FloatArray, bias: FloatArray, N: number, C: number, eps: number): void {
  for (let n = 0; n < N; n++) {
    const o = n * C;
    let m = 0;
    for (let c = 0; c < C; c++) m += inp[o + c];
    m /= C;
    let v = 0;
    for (let c = 0; c < C; c++) {
      const d = inp[o + c] - m;
      v += d * d;
    }
    const s = 1 / Math.sqrt(v / C + eps);
    for (let c = 0; c < C; c++) out[o + c] = (inp[o + c] - m) * s * weight[c] + bias[c];
    mean[n] = m;
    rstd[n] = s;
  }
}

// dout (N,C), inp, weight, mean, rstd -> dinp (N,C), dweight (C), dbias (C) accumulated
export function layernormBackward(dinp: FloatArray, dweight: FloatArray | null, dbias: FloatArray | null,
  dout: FloatArray, inp: FloatArray, weight: FloatArray, mean: FloatArray, rstd: FloatArray, N: number, C: number): void {
  for (let n = 0; n < N; n++) {
    const o = n * C;
    const m = mean[n];
    const s = rstd[n];
    // dnorm = dout * weight; dinp = s * (dnorm - mean(dnorm) - xhat * mean(dnorm * xhat))
    let dnormMean = 0;
    let dnormXhatMean = 0;
    for (let c = 0; c < C; c++) {
      const xhat = (inp[o + c] - m) * s;
      const dnorm = dout[o + c] * weight[c];
      dnormMean += dnorm;
      dnormXhatMean += dnorm * xhat;
    }
    dnormMean /= C;
    dnormXhatMean /= C;
    for (let c = 0; c < C; c++) {
      const xhat = (inp[o + c] - m) * s;
      const dnorm = dout[o + c] * weight[c];
      if (dbias) dbias[c] += dout[o + c];
      if (dweight) dweight[c] += dout[o + c] * xhat;
      dinp[o + c] += s * (dnorm - dnormMean - xhat * dnormXhatMean);
    }
  }
}
