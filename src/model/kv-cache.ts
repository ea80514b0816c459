// Key/value cache for generation: each layer's keys and values of the tokens seen so far (batch of one), so a
// new token costs one row of every projection instead of a forward over the whole prefix. The rows live in the
// model's backend and are written by its copyRows kernel.
import type { Backend } from '../backend/kernels.js';

export class KvCache<F = Float32Array> {
  /** positions already cached */
  length = 0;
  private capacity = 0;
  private k: F[] = [];
  private v: F[] = [];

  constructor(private readonly kernels: Backend<F, unknown>, readonly layers: number, readonly kvDim: number) {}

  /** make room for `total` positions, keeping what is cached */
  reserve(total: number): void {
    if (total <= this.capacity) return;
    const kn = this.kernels;
    const cap = Math.max(total, this.capacity * 2, 64);
    const kept = this.length * this.kvDim;
    for (let l = 0; l < this.layers; l++) {
      const k = kn.allocFloats(cap * this.kvDim);
      const v = kn.allocFloats(cap * this.kvDim);
      const oldK = this.k[l];
      const oldV = this.v[l];
      if (oldK !== undefined && oldV !== undefined) {
        if (kept > 0) {
          kn.copyRows(k, oldK, 1, kept, kept, kept);
          kn.copyRows(v, oldV, 1, kept, kept, kept);
        }
        kn.free(oldK);
        kn.free(oldV);
      }
      this.k[l] = k;
      this.v[l] = v;
    }
    this.capacity = cap;
  }

  /** k, v (n, kvDim) rows `stride` apart -> cache rows length..length+n-1 of layer l (length advances in commit) */
  write(l: number, k: F, v: F, n: number, stride: number): void {
    this.reserve(this.length + n);
    const kn = this.kernels;
    const D = this.kvDim;
    const at = this.length * D;
    kn.copyRows(kn.view(this.k[l]!, at, n * D), k, n, D, D, stride);
    kn.copyRows(kn.view(this.v[l]!, at, n * D), v, n, D, D, stride);
  }

  keys(l: number): F {
    return this.k[l]!;
  }

  values(l: number): F {
    return this.v[l]!;
  }
}
