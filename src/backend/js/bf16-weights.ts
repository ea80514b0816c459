// Products and lookups over frozen bfloat16 weights (torch_dtype bfloat16), the reference for every backend: the
// weight is widened exactly (bf16 is the top half of a float32), the float operand rounded to bfloat16, and the
// float32 kernels run in bf16 mode, so the numbers are by definition those of the bf16 option on a widened weight.
import type { Bf16Buffer, FloatArray } from '../kernels.js';
import { bf16ToF32 } from '../../tensor/dtype.js';
import { embeddingForward } from './embedding.js';
import { getMatmulBf16, matmulBackward, matmulForward, setMatmulBf16 } from './matmul.js';

/** x's bit patterns, in place */
function bitsOf(x: Bf16Buffer<FloatArray>): Uint16Array {
  const d = x.data;
  if (!(d instanceof Float32Array)) throw new TypeError('bfloat16 weights live in Float32Array carriers');
  return new Uint16Array(d.buffer, d.byteOffset, x.length);
}

/** the values of x (or of its first n) as float32 */
function widen(x: Bf16Buffer<FloatArray>, n: number = x.length): Float32Array {
  return bf16ToF32(bitsOf(x).subarray(0, n));
}

/** runs f with bf16 products on, restoring the mode after */
function inBf16Mode(f: () => void): void {
  const was = getMatmulBf16();
  setMatmulBf16(true);
  try {
    f();
  } finally {
    setMatmulBf16(was);
  }
}

// inp (N,C), weight (OC,C) bf16, bias (OC) | null -> out (N,OC) written
export function matmulForwardBf16(out: FloatArray, inp: FloatArray, weight: Bf16Buffer<FloatArray>, bias: FloatArray | null,
  N: number, C: number, OC: number): void {
  const w = widen(weight, OC * C);
  inBf16Mode(() => matmulForward(out, inp, w, bias, N, C, OC));
}

// dout (N,OC), weight (OC,C) bf16 -> dinp (N,C) accumulated, or written when not `accumulate`
export function matmulBackwardBf16(dinp: FloatArray, dout: FloatArray, weight: Bf16Buffer<FloatArray>,
  N: number, C: number, OC: number, accumulate: boolean): void {
  const w = widen(weight, OC * C);
  inBf16Mode(() => matmulBackward(dinp, null, null, dout, dinp, w, N, C, OC, accumulate));
}

// ids (N), table (V,C) bf16 -> out (N,C) written or accumulated; only the looked-up rows are widened
export function embeddingForwardBf16(out: FloatArray, ids: Int32Array, table: Bf16Buffer<FloatArray>, N: number, C: number,
  accumulate: boolean): void {
  const bits = bitsOf(table);
  const row = new Float32Array(C);
  for (let n = 0; n < N; n++) {
    bf16ToF32(bits.subarray(ids[n]! * C, ids[n]! * C + C), row);
    embeddingForward(out.subarray(n * C, n * C + C), ZERO_ID, row, 1, C, accumulate);
  }
}

const ZERO_ID = new Int32Array(1);
