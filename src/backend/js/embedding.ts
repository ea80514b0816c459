// Embedding lookup and its scatter-add backward.
import type { FloatArray } from '../kernels.js';

// ids (N), table (V,C) -> out (N,C): written, or added to when accumulate
export function embeddingForward(out: FloatArray, ids: Int32Array, table: FloatArray, N: number, C: number,
  accumulate: boolean): void {
  for (let n = 0; n < N; n++) {
    const to = ids[n] * C;
    const oo = n * C;
    if (accumulate) for (let c = 0; c < C; c++) out[oo + c] += table[to + c];
    else out.set(table.subarray(to, to + C), oo); // a row copy: the same values, at memcpy speed (loss-head row gathers)
  }
}

// dout (N,C), ids (N) -> dtable (V,C) accumulated
export function embeddingBackward(dtable: FloatArray, dout: FloatArray, ids: Int32Array, N: number, C: number): void {
  for (let n = 0; n < N; n++) {
    const to = ids[n] * C;
    const oo = n * C;
    for (let c = 0; c < C; c++) dtable[to + c] += dout[oo + c];
  }
}
