// The fused, chunked loss head (the Liger-Kernel idea): lm_head matmul, log-softmax and target gather run a
// chunk of rows at a time, so only a (chunkRows, V) block of logits ever exists instead of (rows, V) — for a
// 150k vocabulary that block is the largest buffer of a training step.
//
// hidden (N,C), weight (V,C), rows (M), targets (M) -> logp (M) and optionally each row's logit mean and argmax,
// as the unfused head (logprob-head.ts)
//
// ORPO's d loss / d logp is only known once every row is scored (each response's average log-prob enters the
// odds ratio), so backward recomputes each chunk's logits from the saved hidden rows and lse, then turns them
// into dlogits in place and accumulates dhidden and (unless the head is frozen) dweight. The arithmetic per row
// is the unfused head's; only the order of dweight's sum over rows changes (float32 rounding).
//
// With a frozen head (LoRA: no dweight), `frozenWeight` saves that second pass over the vocabulary: d logp_n /
// d hidden_n = (onehot(target_n) - softmax_n) W is a C-vector per row that forward can compute while the chunk's
// logits exist, and backward only scales it by dlogp_n. Forward then costs two vocabulary products instead of
// one, so evaluation should use a head without it.
import { linearBackward, linearForward, type Backend, type FloatArray, type Weight } from '../backend/kernels.js';
import { Arena, type Precision } from '../model/base.js';
import { checkLogitStats, uploadDlogp, type LogitStats, type TokenLogprobHead } from './logprob-head.js';

/** Rows per chunk: (256, 151936) float32 logits are 156 MB, against 1.2 GB for 2 x 1024 rows unfused. */
export const DEFAULT_CHUNK_ROWS = 256;

export class FusedLogprobHead<F = Float32Array, I = Int32Array> implements TokenLogprobHead<F, I> {
  readonly chunkRows: number;
  private readonly arena: Arena<F, I>;
  /** the head weight gets no gradient: forward precomputes d logp / d hidden per row (see above) */
  readonly frozenWeight: boolean;
  private saved: { hidden: F; weight: Weight<F>; rows: I; targets: I; M: number; C: number; V: number } | null = null;

  constructor(private readonly kernels: Backend<F, I>, opts: { chunkRows?: number; precision?: Precision; frozenWeight?: boolean } = {}) {
    this.chunkRows = opts.chunkRows ?? DEFAULT_CHUNK_ROWS;
    this.frozenWeight = opts.frozenWeight ?? false;
    if (!Number.isInteger(this.chunkRows) || this.chunkRows < 1) throw new Error(`fused loss head: chunkRows must be a positive integer, got ${this.chunkRows}`);
    this.arena = new Arena(kernels, opts.precision ?? 'float32');
  }

  forward(hidden: F, weight: Weight<F>, rows: Int32Array, tgt: Int32Array, C: number, V: number,
    stats?: LogitStats<F, I> | null): F {
    const k = this.kernels;
    const M = rows.length;
    if (stats) checkLogitStats(k, stats, M);
    const rowsBuf = this.arena.uploadInts('rows', rows);
    const targets = this.arena.uploadInts('targets', tgt);
    const lse = this.arena.get('lse', M);
    const lp = this.arena.get('logp', M);
    const rowGrad = this.frozenWeight ? this.arena.get('row-grad', M * C) : null;
    let ones: F | null = null;
    if (this.frozenWeight) {
      ones = this.arena.get('ones', Math.min(this.chunkRows, M));
      k.upload(ones, new Float32Array(Math.min(this.chunkRows, M)).fill(1));
    }
    for (let first = 0; first < M; first += this.chunkRows) {
      const m = Math.min(this.chunkRows, M - first);
      const block = this.arena.get('chunk-hidden', m * C);
      k.gatherRows(block, hidden, k.viewInts(rowsBuf, first, m), m, C);
      const logits = this.arena.get('logits', m * V);
      linearForward(k, logits, block, weight, null, m, C, V);
      // now, while this chunk's logits exist (and before a frozen head writes their gradient over them)
      if (stats) k.logitsStats(k.view(stats.mean, first, m), k.viewInts(stats.argmax, first, m), logits, m, V);
      const chunkLse = k.view(lse, first, m);
      const chunkTargets = k.viewInts(targets, first, m);
      k.logprobForward(k.view(lp, first, m), chunkLse, logits, chunkTargets, m, V);
      if (rowGrad && ones) {
        // dlogp = 1: the logits become onehot - softmax, and (onehot - softmax) W is d logp / d hidden
        k.logprobBackward(logits, k.view(ones, 0, m), logits, chunkLse, chunkTargets, m, V);
        linearBackward(k, k.view(rowGrad, first * C, m * C), null, null, logits, block, weight, m, C, V, false);
      }
    }
    // hidden is the model's buffer: it stays valid until the model's next forward, which comes after backward
    this.saved = { hidden, weight, rows: rowsBuf, targets, M, C, V };
    return lp;
  }

  backward(dhidden: F, dweight: F | null, dlogp: FloatArray): void {
    if (!this.saved) throw new Error('fused loss head: backward called before forward');
    const { hidden, weight, rows, targets, M, C, V } = this.saved;
    const k = this.kernels;
    const lse = this.arena.get('lse', M);
    const dlp = uploadDlogp(k, this.arena, dlogp, M);
    if (this.frozenWeight) {
      if (dweight) throw new Error('fused loss head: built with frozenWeight, so it cannot compute the head weight gradient');
      // d hidden_n += dlogp_n * (d logp_n / d hidden_n): scale the saved rows, then add them where they came from
      const rowGrad = this.arena.get('row-grad', M * C);
      k.scaleRows(rowGrad, dlp, M, C);
      k.scatterAddRows(dhidden, rowGrad, rows, M, C);
      this.saved = null;
      return;
    }
    for (let first = 0; first < M; first += this.chunkRows) {
      const m = Math.min(this.chunkRows, M - first);
      const chunkRows = k.viewInts(rows, first, m);
      const block = this.arena.get('chunk-hidden', m * C);
      k.gatherRows(block, hidden, chunkRows, m, C);
      // recompute this chunk's logits, then write their gradient over them
      const logits = this.arena.get('logits', m * V);
      linearForward(k, logits, block, weight, null, m, C, V);
      k.logprobBackward(logits, k.view(dlp, first, m), logits, k.view(lse, first, m), k.viewInts(targets, first, m), m, V);
      const dblock = this.arena.get('chunk-dhidden', m * C);
      linearBackward(k, dblock, dweight, null, logits, block, weight, m, C, V, false);
      k.scatterAddRows(dhidden, dblock, chunkRows, m, C);
    }
    this.saved = null;
  }

  bytes(): number {
    return this.arena.bytes();
  }
}
