// AdamW (torch.optim.AdamW semantics), gradient norm and scaling over flat buffers.
import type { FloatArray } from '../kernels.js';

export function adamwStep(params: FloatArray, grads: FloatArray, m: FloatArray, v: FloatArray, N: number,
  lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number): void {
  const bc1 = 1 - Math.pow(beta1, step);
  const bc2 = 1 - Math.pow(beta2, step);
  const stepSize = lr / bc1;
  const sqrtBc2 = Math.sqrt(bc2);
  const decay = 1 - lr * weightDecay;
  for (let i = 0; i < N; i++) {
    const g = grads[i];
    const mi = beta1 * m[i] + (1 - beta1) * g;
    const vi = beta2 * v[i] + (1 - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    params[i] = params[i] * decay - stepSize * mi / (Math.sqrt(vi) / sqrtBc2 + eps);
  }
}

export function sumSquares(x: FloatArray, N: number): number {
  let s = 0;
  for (let i = 0; i < N; i++) s += x[i] * x[i];
  return s;
}

export function scale(x: FloatArray, s: number, N: number): void {
  for (let i = 0; i < N; i++) x[i] *= s;
}
