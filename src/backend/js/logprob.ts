// Per-token log-probabilities of the targets: the part of the loss head after the lm_head matmul.
// logits (N,V), targets (N) (-1 = none) -> logp (N), lse (N); and the per-row logit statistics the metrics report.
import type { FloatArray } from '../kernels.js';

/** log-sum-exp of a row, subtracting the row max so exp never overflows */
function rowLogSumExp(logits: FloatArray, o: number, V: number): number {
  let max = -Infinity;
  for (let j = 0; j < V; j++) if (logits[o + j] > max) max = logits[o + j];
  let sum = 0;
  for (let j = 0; j < V; j++) sum += Math.exp(logits[o + j] - max);
  return max + Math.log(sum);
}

export function logprobForward(logp: FloatArray, lse: FloatArray, logits: FloatArray, targets: Int32Array,
  N: number, V: number): void {
  for (let n = 0; n < N; n++) {
    const tgt = targets[n];
    if (tgt < 0) {
      logp[n] = 0;
      lse[n] = 0;
      continue;
    }
    const o = n * V;
    const l = rowLogSumExp(logits, o, V);
    lse[n] = l;
    logp[n] = logits[o + tgt] - l;
  }
}

// logits (N,V) -> mean (N) written (float64 sum), argmax (N) written: first index of the row maximum (torch.argmax)
export function logitsStats(mean: FloatArray, argmax: Int32Array, logits: FloatArray, N: number, V: number): void {
  if (N > 0 && !(V >= 1)) throw new RangeError(`logitsStats: V must be at least 1, got ${V}`);
  for (let n = 0; n < N; n++) {
    const o = n * V;
    let best = logits[o];
    let bestAt = 0;
    let sum = 0;
    for (let j = 0; j < V; j++) {
      const x = logits[o + j];
      sum += x;
      // strictly greater: a later equal value never replaces the first one
      if (x > best) {
        best = x;
        bestAt = j;
      }
    }
    mean[n] = sum / V;
    argmax[n] = bestAt;
  }
}

// dlogp (N), logits, lse, targets -> dlogits (N,V) written: dlogp * (onehot - softmax); may alias logits
export function logprobBackward(dlogits: FloatArray, dlogp: FloatArray, logits: FloatArray, lse: FloatArray,
  targets: Int32Array, N: number, V: number): void {
  for (let n = 0; n < N; n++) {
    const o = n * V;
    const tgt = targets[n];
    if (tgt < 0) {
      for (let j = 0; j < V; j++) dlogits[o + j] = 0;
      continue;
    }
    const g = dlogp[n];
    const l = lse[n];
    for (let j = 0; j < V; j++) dlogits[o + j] = -g * Math.exp(logits[o + j] - l);
    dlogits[o + tgt] += g;
  }
}
