// Matrix products, row-major. gemm is the primitive; matmulForward/Backward are the linear layer on top of it.
// Sums run in JavaScript numbers (float64) and are rounded once when stored.
import type { FloatArray } from '../kernels.js';

// c (M,N) [+]= op(a) (M,K) @ op(b) (K,N); transA: a stored (K,M); transB: b stored (N,K)
export function gemm(c: FloatArray, a: FloatArray, b: FloatArray, M: number, N: number, K: number,
  transA: boolean, transB: boolean, accumulate: boolean): void {
  const row = new Float64Array(N);
  for (let i = 0; i < M; i++) {
    row.fill(0);
    for (let p = 0; p < K; p++) {
      const aip = transA ? a[p * M + i] : a[i * K + p];
      if (aip === 0) continue;
      if (transB) {
        for (let j = 0; j < N; j++) row[j] += aip * b[j * K + p];
      } else {
        const bo = p * N;
        for (let j = 0; j < N; j++) row[j] += aip * b[bo + j];
      }
    }
    const co = i * N;
    if (accumulate) for (let j = 0; j < N; j++) c[co + j] += row[j];
    else for (let j = 0; j < N; j++) c[co + j] = row[j];
  }
}

// inp (N,C), weight (OC,C), bias (OC)|null -> out (N,OC) written
export function matmulForward(out: FloatArray, inp: FloatArray, weight: FloatArray, bias: FloatArray | null,
  N: number, C: number, OC: number): void {
  for (let n = 0; n < N; n++) {
    const io = n * C;
    for (let o = 0; o < OC; o++) {
      const wo = o * C;
      let s = bias ? bias[o] : 0;
      for (let c = 0; c < C; c++) s += inp[io + c] * weight[wo + c];
      out[n * OC + o] = s;
    }
  }
}

// dout (N,OC), inp (N,C), weight (OC,C) -> dinp (N,C), dweight (OC,C), dbias (OC), accumulated, each optional
export function matmulBackward(dinp: FloatArray | null, dweight: FloatArray | null, dbias: FloatArray | null,
  dout: FloatArray, inp: FloatArray, weight: FloatArray, N: number, C: number, OC: number): void {
  if (dinp) gemm(dinp, dout, weight, N, C, OC, false, false, true); // dinp += dout @ weight
  if (dweight) gemm(dweight, dout, inp, OC, C, N, true, false, true); // dweight += dout^T @ inp
  if (dbias) {
    for (let o = 0; o < OC; o++) {
      let s = 0;
      for (let n = 0; n < N; n++) s += dout[n * OC + o];
      dbias[o] += s;
    }
  }
}
