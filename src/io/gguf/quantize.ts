// The tensor encodings GGUF export writes, bit for bit as ggml produces them:
//   F32; F16 and BF16 rounded to nearest, ties to even (src/tensor/dtype.ts, the same rounding as ggml's
//   GGML_FP32_TO_FP16 / ggml_compute_fp32_to_bf16); Q8_0 as ggml's quantize_row_q8_0_ref: blocks of 32 values,
//   each an f16 scale d = amax / 127 followed by 32 int8 q = roundf(x * (1 / d)), all in float32 arithmetic.

import { f16ToF32, f32ToBf16, f32ToF16 } from '../../tensor/dtype.js';

export type GgmlType = 'F32' | 'F16' | 'BF16' | 'Q8_0';

interface TypeInfo {
  /** ggml_type enum value */
  id: number;
  blockElements: number;
  blockBytes: number;
}

const TYPES: Readonly<Record<GgmlType, TypeInfo>> = {
  F32: { id: 0, blockElements: 1, blockBytes: 4 },
  F16: { id: 1, blockElements: 1, blockBytes: 2 },
  Q8_0: { id: 8, blockElements: 32, blockBytes: 34 },
  BF16: { id: 30, blockElements: 1, blockBytes: 2 },
};

export function ggmlTypeSize(type: GgmlType): TypeInfo {
  return TYPES[type];
}

export const Q8_0_BLOCK = 32;

// C's roundf: halves away from zero (Math.round sends -2.5 to -2)
function roundHalfAwayFromZero(x: number): number {
  return x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5);
}

/** Q8_0 blocks of `x` (length a multiple of 32): per block 2 bytes of f16 scale, then 32 int8 values. */
export function quantizeQ8_0(x: Float32Array): Uint8Array {
  if (x.length % Q8_0_BLOCK !== 0) throw new Error(`quantizeQ8_0: ${x.length} values are not whole blocks of ${Q8_0_BLOCK}`);
  const blocks = x.length / Q8_0_BLOCK;
  const out = new Uint8Array(blocks * 34);
  const view = new DataView(out.buffer);
  const scale = new Float32Array(1);
  const scaleBits = new Uint16Array(1);
  for (let b = 0; b < blocks; b++) {
    const first = b * Q8_0_BLOCK;
    let amax = 0;
    for (let j = 0; j < Q8_0_BLOCK; j++) amax = Math.max(amax, Math.abs(x[first + j]!));
    const d = Math.fround(amax / 127);
    const inverse = d !== 0 ? Math.fround(1 / d) : 0;
    scale[0] = d;
    f32ToF16(scale, scaleBits);
    view.setUint16(b * 34, scaleBits[0]!, true);
    for (let j = 0; j < Q8_0_BLOCK; j++) {
      view.setInt8(b * 34 + 2 + j, roundHalfAwayFromZero(Math.fround(x[first + j]! * inverse)));
    }
  }
  return out;
}

/** Values as ggml decodes Q8_0 blocks (f16 scale times int8), for tests and error estimates. */
export function dequantizeQ8_0(bytes: Uint8Array): Float32Array {
  const blocks = bytes.length / 34;
  const out = new Float32Array(blocks * Q8_0_BLOCK);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bits = new Uint16Array(1);
  const scale = new Float32Array(1);
  for (let b = 0; b < blocks; b++) {
    bits[0] = view.getUint16(b * 34, true);
    const d = f16ToF32(bits, scale)[0]!;
    for (let j = 0; j < Q8_0_BLOCK; j++) out[b * Q8_0_BLOCK + j] = d * view.getInt8(b * 34 + 2 + j);
  }
  return out;
}

/** The bytes of `values` stored as `type` (rows of `rowLength`; Q8_0 needs it to be a multiple of 32). */
export function encodeTensor(type: GgmlType, values: Float32Array, rowLength: number): Uint8Array {
  switch (type) {
    case 'F32': {
      const copy = values.byteOffset % 4 === 0 ? values : Float32Array.from(values);
      return new Uint8Array(copy.buffer, copy.byteOffset, copy.byteLength);
    }
    case 'F16': {
      const bits = f32ToF16(values);
      return new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength);
    }
    case 'BF16': {
      const bits = f32ToBf16(values);
      return new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength);
    }
    case 'Q8_0':
      if (rowLength % Q8_0_BLOCK !== 0) throw new Error(`Q8_0 needs rows of a multiple of ${Q8_0_BLOCK} values, got ${rowLength}`);
      return quantizeQ8_0(values);
  }
}
