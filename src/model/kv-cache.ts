// Key/value cache for generation: each layer's keys and values of the tokens seen so far (batch of one), so a
// new token costs one row of every projection instead of a forward over the whole prefix.
import type { FloatArray } from '../backend/kernels.js';

export class KvCache {
  /** positions already cached */
  length = 0;
  private capacity = 0;
  private k: Float32Array[] = [];
  private v: Float32Array[] = [];

  constructor(readonly layers: number, readonly kvDim: number) {}

  /** make room for `total` positions, keeping what is cached */
  reserve(total: number): void {
    if (total <= this.capacity) return;
    const cap = Math.max(total, this.capacity * 2, 64);
    for (let l = 0; l < this.layers; l++) {
      const k = new Float32Array(cap * this.kvDim);
      const v = new Float32Array(cap * this.kvDim);
      if (this.k[l]) {
        k.set(this.k[l].subarray(0, this.length * this.kvDim));
        v.set(this.v[l].subarray(0, this.length * this.kvDim));
      }
      this.k[l] = k;
      this.v[l] = v;
    }
    this.capacity = cap;
  }

  /** k, v (n, kvDim) rows `stride` apart -> cache rows length..length+n-1 of layer l (length advances in commit) */
  write(l: number, k: FloatArray, v: FloatArray, n: number, stride: number): void {
    this.reserve(this.length + n);
    const D = this.kvDim;
    for (let i = 0; i < n; i++) {
      const dst = (this.length + i) * D;
      this.k[l].set(k.subarray(i * stride, i * stride + D), dst);
      this.v[l].set(v.subarray(i * stride, i * stride + D), dst);
    }
  }

  keys(l: number): Float32Array {
    return this.k[l];
  }

  values(l: number): Float32Array {
    return this.v[l];
  }
}
