// The loss head: hidden states -> lm_head logits -> log-probability of each target token.
// hidden (N,C), weight (V,C), targets (N) (-1 = no target) -> logp (N)
//
// Rows without a target (padding, each row's last token) are compacted away first, so the (rows, V) logits
// buffer — the largest buffer of a training step for big vocabularies — only holds rows that are scored.
// A fused, chunked head can replace this one: anything implementing TokenLogprobHead.
import type { FloatArray, Kernels } from '../backend/kernels.js';
import { Arena, type Precision } from '../model/base.js';

export interface TokenLogprobHead {
  /** hidden (N,C), weight (V,C), targets (N) -> logp (N) (0 where target is -1); saves what backward needs */
  forward(hidden: Float32Array, weight: Float32Array, targets: Int32Array, N: number, C: number, V: number): Float32Array;
  /** dlogp (N) -> dhidden (N,C) accumulated, dweight (V,C) accumulated unless null */
  backward(dhidden: Float32Array, dweight: Float32Array | null, dlogp: FloatArray): void;
  /** bytes of the buffers the head holds (memory accounting) */
  bytes(): number;
}

export class UnfusedLogprobHead implements TokenLogprobHead {
  private readonly arena: Arena;
  private saved: { hidden: Float32Array; weight: Float32Array; rows: Int32Array; targets: Int32Array; N: number; C: number; V: number } | null = null;

  constructor(private readonly kernels: Kernels, precision: Precision = 'float32') {
    this.arena = new Arena(precision);
  }

  forward(hidden: Float32Array, weight: Float32Array, targets: Int32Array, N: number, C: number, V: number): Float32Array {
    const k = this.kernels;
    const rows: number[] = [];
    for (let n = 0; n < N; n++) if (targets[n] >= 0) rows.push(n);
    const M = rows.length;
    const packed = this.arena.get('hidden', M * C);
    const tgt = new Int32Array(M);
    const logp = this.arena.get('logp-out', N);
    logp.fill(0);
    rows.forEach((n, i) => {
      packed.set(hidden.subarray(n * C, n * C + C), i * C);
      tgt[i] = targets[n];
    });
    const logits = this.arena.get('logits', M * V);
    k.matmulForward(logits, packed, weight, null, M, C, V);
    const lp = this.arena.get('logp', M);
    k.logprobForward(lp, this.arena.get('lse', M), logits, tgt, M, V);
    rows.forEach((n, i) => { logp[n] = lp[i]; });
    this.saved = { hidden: packed, weight, rows: Int32Array.from(rows), targets: tgt, N, C, V };
    return logp;
  }

  backward(dhidden: Float32Array, dweight: Float32Array | null, dlogp: FloatArray): void {
    if (!this.saved) throw new Error('loss head: backward called before forward');
    const { hidden, weight, rows, targets, C, V } = this.saved;
    const k = this.kernels;
    const M = rows.length;
    const dlp = this.arena.get('dlogp', M);
    for (let i = 0; i < M; i++) dlp[i] = dlogp[rows[i]];
    // the logits are not needed after this: their gradient is written over them
    const logits = this.arena.get('logits', M * V);
    k.logprobBackward(logits, dlp, logits, this.arena.get('lse', M), targets, M, V);
    const dpacked = this.arena.zeros('dhidden', M * C);
    k.matmulBackward(dpacked, dweight, null, logits, hidden, weight, M, C, V);
    // scatter back to the rows they came from: O(rows x C) adds, negligible next to the (rows x V x C) matmul,
    // and one kernel call per row would cost more in call overhead than the arithmetic
    for (let i = 0; i < M; i++) {
      const src = i * C;
      const dst = rows[i] * C;
      for (let c = 0; c < C; c++) dhidden[dst + c] += dpacked[src + c];
    }
    this.saved = null;
  }

  bytes(): number {
    return this.arena.bytes();
  }
}
