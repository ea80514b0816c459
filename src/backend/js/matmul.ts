// Matrix products, row-major. gemm is the primitive; matmulForward/Backward are the linear layer on top of it.
// Sums run in JavaScript numbers (float64) and are rounded once when stored. With setMatmulBf16(true) every
// operand element is first rounded to bfloat16 (mixed precision, as the native backend's bf16 products).
import type { FloatArray } from '../kernels.js';
import { roundToBf16 } from '../../tensor/dtype.js';

let bf16 = false;

export function setMatmulBf16(on: boolean): void {
  bf16 = on;
}

export function getMatmulBf16(): boolean {
  return bf16;
}

/** an operand as the products see it: rounded to bfloat16 in bf16 mode, else as it is */
function operand(x: FloatArray): FloatArray {
  return bf16 ? Float64Array.from(x, roundToBf16) : x;
}

// c (M,N) [+]= op(a) (M,K) @ op(b) (K,N); transA: a stored (K,M); transB: b stored (N,K)
export function gemm(c: FloatArray, aIn: FloatArray, bIn: FloatArray, M: number, N: number, K: number,
  transA: boolean, transB: boolean, accumulate: boolean): void {
  const a = operand(aIn.subarray(0, M * K));
  const b = operand(bIn.subarray(0, K * N));
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
export function matmulForward(out: FloatArray, inpIn: FloatArray, weightIn: FloatArray, bias: FloatArray | null,
  N: number, C: number, OC: number): void {
  const inp = operand(inpIn.subarray(0, N * C));
  const weight = operand(weightIn.subarray(0, OC * C));
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

// dout (N,OC), inp (N,C), weight (OC,C) -> dinp (N,C) accumulated (written when not `accumulate`), dweight (OC,C),
// dbias (OC) accumulated, each optional
export function matmulBackward(dinp: FloatArray | null, dweight: FloatArray | null, dbias: FloatArray | null,
  dout: FloatArray, inp: FloatArray, weight: FloatArray, N: number, C: number, OC: number, accumulate: boolean): void {
  if (dinp) gemm(dinp, dout, weight, N, C, OC, false, false, accumulate); // dinp [+]= dout @ weight
  if (dweight) gemm(dweight, dout, inp, OC, C, N, true, false, true); // dweight += dout^T @ inp
  if (dbias) {
    for (let o = 0; o < OC; o++) {
      let s = 0;
      for (let n = 0; n < N; n++) s += dout[n * OC + o];
      dbias[o] += s;
    }
  }
}
