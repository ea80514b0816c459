// The loss head: hidden states -> lm_head logits -> log-probability of each target token.
// hidden (N,C), weight (V,C), rows (M) int32, targets (M) int32 -> logp (M): logp[i] = log_softmax(hidden[rows[i]] W^T)[targets[i]]
//
// The caller lists only the scored (hidden row, target) pairs, so the (M, V) logits buffer - the largest buffer of a
// training step for big vocabularies - holds no padding. A hidden row may be listed more than once (the last
// prompt token of a shared prompt predicts both responses' first tokens); backward sums its gradients.
// A fused, chunked head can replace this one: anything implementing TokenLogprobHead.
import { linearBackward, linearForward, type Backend, type FloatArray, type Weight } from '../backend/kernels.js';
import { Arena, type Precision } from '../model/base.js';

/**
 * Per scored row i, what the metrics need from its logits (M,V) besides the log-prob: mean[i] = mean over the
 * vocabulary of logits[i] (TRL's `logits/chosen|rejected` average it over completion tokens), argmax[i] = index of
 * the first maximal logit (SFT's `mean_token_accuracy` compares it to the target). Allocated by the caller in the
 * head's backend, M each. The head fills them while the logits exist, so the fused head needs no second pass over
 * the vocabulary for them.
 */
export interface LogitStats<F = Float32Array, I = Int32Array> {
  mean: F;
  argmax: I;
}

/**
 * The loss head over one backend's buffers. Rows, targets and d loss / d logp come from the host (the objective
 * computes on the host over M log-probs); everything of size C or V stays in the backend.
 */
export interface TokenLogprobHead<F = Float32Array, I = Int32Array> {
  /**
   * hidden (N,C), weight (V,C), rows (M), targets (M) -> logp (M); saves what backward needs.
   * `stats`, when given, is filled with each scored row's logit mean and argmax (see LogitStats).
   */
  forward(hidden: F, weight: Weight<F>, rows: Int32Array, targets: Int32Array, C: number, V: number,
    stats?: LogitStats<F, I> | null): F;
  /** dlogp (M) -> dhidden (N,C) accumulated at the rows forward listed, dweight (V,C) accumulated unless null */
  backward(dhidden: F, dweight: F | null, dlogp: FloatArray): void;
  /** bytes of the buffers the head holds (memory accounting) */
  bytes(): number;
}

/** logits per block when the stats and the log-probs are computed in turn: 1 MiB, half a typical L2 */
const STATS_BLOCK_FLOATS = 256 * 1024;

/** stats' buffers must hold a value per scored row: a short one would be written past its end by the JS kernel */
export function checkLogitStats<F, I>(k: Backend<F, I>, stats: LogitStats<F, I>, M: number): void {
  const means = k.lengthOf(stats.mean);
  const argmaxes = k.lengthOf(stats.argmax);
  if (means < M || argmaxes < M) {
    throw new RangeError(`loss head: logit stats hold ${means} means and ${argmaxes} argmaxes, need ${M} (one per scored row)`);
  }
}

/**
 * d loss / d logp from the host into the head's backend buffer `dlogp` (M): float32 for the kernels, except in a
 * float64 arena (finite-difference tests), which keeps every bit.
 */
export function uploadDlogp<F, I>(k: Backend<F, I>, arena: Arena<F, I>, dlogp: FloatArray, M: number): F {
  const buf = arena.get('dlogp', M);
  k.upload(buf, dlogp.length === M ? dlogp : dlogp.subarray(0, M));
  return buf;
}

export class UnfusedLogprobHead<F = Float32Array, I = Int32Array> implements TokenLogprobHead<F, I> {
  private readonly arena: Arena<F, I>;
  private saved: { hidden: F; weight: Weight<F>; rows: I; targets: I; M: number; C: number; V: number } | null = null;

  constructor(private readonly kernels: Backend<F, I>, precision: Precision = 'float32') {
    this.arena = new Arena(kernels, precision);
  }

  forward(hidden: F, weight: Weight<F>, rows: Int32Array, targets: Int32Array, C: number, V: number,
    stats?: LogitStats<F, I> | null): F {
    const k = this.kernels;
    const M = rows.length;
    if (stats) checkLogitStats(k, stats, M);
    const rowsBuf = this.arena.uploadInts('rows', rows);
    const targetsBuf = this.arena.uploadInts('targets', targets);
    const packed = this.arena.get('hidden', M * C);
    k.gatherRows(packed, hidden, rowsBuf, M, C);
    const logits = this.arena.get('logits', M * V);
    linearForward(k, logits, packed, weight, null, M, C, V);
    const lp = this.arena.get('logp', M);
    const lse = this.arena.get('lse', M);
    if (!stats) k.logprobForward(lp, lse, logits, targetsBuf, M, V);
    else {
      // a few rows at a time, so that logprobForward reads the rows logitsStats has just brought into the cache
      // instead of the whole (M,V) block from memory a second time (measured: the stats cost 8% of a 5M model's
      // step as two whole-block passes, 1-4% interleaved; 30M: 1-2%)
      const rowsPerBlock = Math.max(1, Math.floor(STATS_BLOCK_FLOATS / V));
      for (let first = 0; first < M; first += rowsPerBlock) {
        const m = Math.min(rowsPerBlock, M - first);
        const block = k.view(logits, first * V, m * V);
        k.logitsStats(k.view(stats.mean, first, m), k.viewInts(stats.argmax, first, m), block, m, V);
        k.logprobForward(k.view(lp, first, m), k.view(lse, first, m), block, k.viewInts(targetsBuf, first, m), m, V);
      }
    }
    this.saved = { hidden: packed, weight, rows: rowsBuf, targets: targetsBuf, M, C, V };
    return lp;
  }

  backward(dhidden: F, dweight: F | null, dlogp: FloatArray): void {
    if (!this.saved) throw new Error('loss head: backward called before forward');
    const { hidden, weight, rows, targets, M, C, V } = this.saved;
    const k = this.kernels;
    const dlp = uploadDlogp(k, this.arena, dlogp, M);
    // the logits are not needed after this: their gradient is written over them
    const logits = this.arena.get('logits', M * V);
    k.logprobBackward(logits, dlp, logits, this.arena.get('lse', M), targets, M, V);
    const dpacked = this.arena.get('dhidden', M * C);
    linearBackward(k, dpacked, dweight, null, logits, hidden, weight, M, C, V, false);
    k.scatterAddRows(dhidden, dpacked, rows, M, C);
    this.saved = null;
  }

  bytes(): number {
    return this.arena.bytes();
  }
}
