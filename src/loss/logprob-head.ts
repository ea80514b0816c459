// The loss head: hidden states -> lm_head logits -> log-probability of each target token.
// hidden (N,C), weight (V,C), rows (M) int32, targets (M) int32 -> logp (M): logp[i] = log_softmax(hidden[rows[i]] W^T)[targets[i]]
//
// The caller lists only the scored (hidden row, target) pairs, so the (M, V) logits buffer - the largest buffer of a
// training step for big vocabularies - holds no padding. A hidden row may be listed more than once (the last
// prompt token of a shared prompt predicts both responses' first tokens); backward sums its gradients.
// A fused, chunked head can replace this one: anything implementing TokenLogprobHead.
import type { FloatArray, Kernels } from '../backend/kernels.js';
import { Arena, type Precision } from '../model/base.js';

/**
 * Per scored row i, what the metrics need from its logits (M,V) besides the log-prob: mean[i] = mean over the
 * vocabulary of logits[i] (TRL's `logits/chosen|rejected` average it over completion tokens), argmax[i] = index of
 * the first maximal logit (SFT's `mean_token_accuracy` compares it to the target). Allocated by the caller, M each.
 * The head fills them while the logits exist, so the fused head needs no second pass over the vocabulary for them.
 */
export interface LogitStats {
  mean: Float32Array;
  argmax: Int32Array;
}

export interface TokenLogprobHead {
  /**
   * hidden (N,C), weight (V,C), rows (M), targets (M) -> logp (M); saves what backward needs.
   * `stats`, when given, is filled with each scored row's logit mean and argmax (see LogitStats).
   */
  forward(hidden: Float32Array, weight: Float32Array, rows: Int32Array, targets: Int32Array, C: number, V: number,
    stats?: LogitStats | null): Float32Array;
  /** dlogp (M) -> dhidden (N,C) accumulated at the rows forward listed, dweight (V,C) accumulated unless null */
  backward(dhidden: Float32Array, dweight: Float32Array | null, dlogp: FloatArray): void;
  /** bytes of the buffers the head holds (memory accounting) */
  bytes(): number;
}

/** logits per block when the stats and the log-probs are computed in turn: 1 MiB, half a typical L2 */
const STATS_BLOCK_FLOATS = 256 * 1024;

/** stats' arrays must hold a value per scored row: a short one would be written past its end by the JS kernel */
export function checkLogitStats(stats: LogitStats, M: number): void {
  if (stats.mean.length < M || stats.argmax.length < M) {
    throw new RangeError(`loss head: logit stats hold ${stats.mean.length} means and ${stats.argmax.length} argmaxes, `
      + `need ${M} (one per scored row)`);
  }
}

/** hidden rows rows[first..first+m) gathered into block (m, C) */
export function gatherRows(block: Float32Array, hidden: Float32Array, rows: Int32Array, first: number, m: number, C: number): Float32Array {
  for (let i = 0; i < m; i++) {
    const n = rows[first + i];
    block.set(hidden.subarray(n * C, n * C + C), i * C);
  }
  return block;
}

/**
 * dblock (m, C) added to dhidden at rows rows[first..first+m). O(m C) adds, negligible next to the (m V C) matmul;
 * one kernel call per row would cost more in call overhead than the arithmetic.
 */
export function scatterAddRows(dhidden: Float32Array, dblock: Float32Array, rows: Int32Array, first: number, m: number, C: number): void {
  for (let i = 0; i < m; i++) {
    const src = i * C;
    const dst = rows[first + i] * C;
    for (let c = 0; c < C; c++) dhidden[dst + c] += dblock[src + c];
  }
}

export class UnfusedLogprobHead implements TokenLogprobHead {
  private readonly arena: Arena;
  private saved: { hidden: Float32Array; weight: Float32Array; rows: Int32Array; targets: Int32Array; C: number; V: number } | null = null;

  constructor(private readonly kernels: Kernels, precision: Precision = 'float32') {
    this.arena = new Arena(precision);
  }

  forward(hidden: Float32Array, weight: Float32Array, rows: Int32Array, targets: Int32Array, C: number, V: number,
    stats?: LogitStats | null): Float32Array {
    const k = this.kernels;
    const M = rows.length;
    if (stats) checkLogitStats(stats, M);
    const packed = gatherRows(this.arena.get('hidden', M * C), hidden, rows, 0, M, C);
    const logits = this.arena.get('logits', M * V);
    k.matmulForward(logits, packed, weight, null, M, C, V);
    const lp = this.arena.get('logp', M);
    const lse = this.arena.get('lse', M);
    if (!stats) k.logprobForward(lp, lse, logits, targets, M, V);
    else {
      // a few rows at a time, so that logprobForward reads the rows logitsStats has just brought into the cache
      // instead of the whole (M,V) block from memory a second time (measured: the stats cost 8% of a 5M model's
      // step as two whole-block passes, 1-4% interleaved; 30M: 1-2%)
      const rowsPerBlock = Math.max(1, Math.floor(STATS_BLOCK_FLOATS / V));
      for (let first = 0; first < M; first += rowsPerBlock) {
        const m = Math.min(rowsPerBlock, M - first);
        const block = logits.subarray(first * V, (first + m) * V);
        k.logitsStats(stats.mean.subarray(first, first + m), stats.argmax.subarray(first, first + m), block, m, V);
        k.logprobForward(lp.subarray(first, first + m), lse.subarray(first, first + m), block, targets.subarray(first, first + m), m, V);
      }
    }
    this.saved = { hidden: packed, weight, rows, targets, C, V };
    return lp;
  }

  backward(dhidden: Float32Array, dweight: Float32Array | null, dlogp: FloatArray): void {
    if (!this.saved) throw new Error('loss head: backward called before forward');
    const { hidden, weight, rows, targets, C, V } = this.saved;
    const k = this.kernels;
    const M = rows.length;
    const dlp = this.arena.get('dlogp', M);
    for (let i = 0; i < M; i++) dlp[i] = dlogp[i];
    // the logits are not needed after this: their gradient is written over them
    const logits = this.arena.get('logits', M * V);
    k.logprobBackward(logits, dlp, logits, this.arena.get('lse', M), targets, M, V);
    const dpacked = this.arena.zeros('dhidden', M * C);
    k.matmulBackward(dpacked, dweight, null, logits, hidden, weight, M, C, V);
    scatterAddRows(dhidden, dpacked, rows, 0, M, C);
    this.saved = null;
  }

  bytes(): number {
    return this.arena.bytes();
  }
}
