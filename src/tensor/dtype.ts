// Bit-exact conversions between float32 and the 16-bit float formats that model files use (bfloat16, IEEE
// half). Pure functions over flat typed arrays, no I/O. Every narrowing conversion rounds to nearest, ties to
// even (what PyTorch's `.to(torch.bfloat16)` / `.half()` do), so a value that is already exactly representable
// survives a round trip unchanged.
//
// `out`, when given, must have exactly the input's length; it may be a subarray view (e.g. into a flat
// parameter buffer), which is how file readers convert chunk by chunk without an extra copy.

function checkOut(kind: string, inLength: number, outLength: number): void {
  if (outLength !== inLength) {
    throw new RangeError(`${kind}: output has ${outLength} elements but the input has ${inLength}`);
  }
}

// A Uint32Array alias of a Float32Array's bytes, for bit manipulation. Float32Array offsets are always
// 4-byte aligned, so the alias is always legal.
function bitsOf(x: Float32Array): Uint32Array {
  return new Uint32Array(x.buffer, x.byteOffset, x.length);
}

/** bfloat16 bit patterns -> float32. Exact: bf16 is the top half of a float32. */
export function bf16ToF32(bits: Uint16Array, out?: Float32Array): Float32Array {
  const result = out ?? new Float32Array(bits.length);
  checkOut('bf16ToF32', bits.length, result.length);
  const u = bitsOf(result);
  for (let i = 0; i < bits.length; i++) u[i] = bits[i]! << 16;
  return result;
}

/**
 * float32 -> bfloat16 bit patterns, round to nearest even. NaN stays NaN (quieted, sign kept: plain rounding
 * could carry a NaN's payload into the exponent and turn it into Inf); Inf stays Inf; finite values beyond
 * the largest bf16 round to Inf, as in PyTorch.
 */
export function f32ToBf16(x: Float32Array, out?: Uint16Array): Uint16Array {
  const result = out ?? new Uint16Array(x.length);
  checkOut('f32ToBf16', x.length, result.length);
  const u = bitsOf(x);
  for (let i = 0; i < x.length; i++) {
    const b = u[i]!;
    if ((b & 0x7fffffff) > 0x7f800000) {
      result[i] = (b >>> 16) | 0x0040;
    } else {
      // adding 0x7fff plus the lowest kept bit rounds half-way cases towards the even neighbour
      result[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
    }
  }
  return result;
}

const scalarF32 = new Float32Array(1);
const scalarBits = new Uint32Array(scalarF32.buffer);

/** x as float32 rounded to the nearest bfloat16 value (ties to even, as f32ToBf16), returned as a number */
export function roundToBf16(x: number): number {
  scalarF32[0] = x;
  const b = scalarBits[0]!;
  scalarBits[0] = (b & 0x7fffffff) > 0x7f800000 ? (b | 0x00400000) & 0xffff0000 : ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) << 16;
  return scalarF32[0]!;
}

// All 65,536 half values, decoded once on first use (256 KiB): a table lookup is both the simplest correct
// decoder (subnormals, Inf, NaN need no special paths at run time) and the fastest one.
let f16Table: Float32Array | null = null;

function decodeF16(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >>> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24; // zero or subnormal
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

function f16ToF32Table(): Float32Array {
  if (f16Table === null) {
    const table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) table[h] = decodeF16(h);
    // keep NaN payloads and signs (Math-produced NaN is a canonical one) so f16 -> f32 -> f16 is lossless
    const u = bitsOf(table);
    for (let h = 0x7c01; h < 0x8000; h++) u[h] = 0x7f800000 | ((h & 0x3ff) << 13);
    for (let h = 0xfc01; h < 0x10000; h++) u[h] = 0xff800000 | ((h & 0x3ff) << 13);
    f16Table = table;
  }
  return f16Table;
}

/** IEEE half bit patterns -> float32. Exact, including subnormals, signed zeros, Inf and NaN. */
export function f16ToF32(bits: Uint16Array, out?: Float32Array): Float32Array {
  const result = out ?? new Float32Array(bits.length);
  checkOut('f16ToF32', bits.length, result.length);
  const table = f16ToF32Table();
  for (let i = 0; i < bits.length; i++) result[i] = table[bits[i]!]!;
  return result;
}

/**
 * float32 -> IEEE half bit patterns, round to nearest even (into subnormals too). Finite values that round
 * beyond 65504 become Inf; NaN stays NaN (quieted, sign kept).
 */
export function f32ToF16(x: Float32Array, out?: Uint16Array): Uint16Array {
  const result = out ?? new Uint16Array(x.length);
  checkOut('f32ToF16', x.length, result.length);
  const u = bitsOf(x);
  for (let i = 0; i < x.length; i++) result[i] = f32BitsToF16Bits(u[i]!);
  return result;
}

function f32BitsToF16Bits(b: number): number {
  const sign = (b >>> 16) & 0x8000;
  const exponent = (b >>> 23) & 0xff;
  const mantissa = b & 0x7fffff;
  if (exponent === 0xff) return mantissa === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mantissa >>> 13);
  const e = exponent - 127 + 15; // the half exponent field, before range checks
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // subnormal half (or zero): the value in units of 2^-24 is m * 2^(exponent - 126)
    if (e < -10) return sign; // below half the smallest subnormal: rounds to zero
    const m = mantissa | 0x800000;
    const shift = 14 - e; // 14..24
    return sign | roundShiftRightEven(m, shift);
  }
  // normal half; a carry out of the mantissa correctly bumps the exponent (and 65520.. reaches Inf)
  return sign | ((e << 10) + roundShiftRightEven(mantissa, 13));
}

/** m >> shift, rounded to nearest, ties to even. */
function roundShiftRightEven(m: number, shift: number): number {
  const kept = m >>> shift;
  const rest = m & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  return rest > half || (rest === half && (kept & 1) === 1) ? kept + 1 : kept;
}
