// Conversions between float32 and bfloat16 / IEEE half, checked against known bit patterns and against an
// independent reference (nearest representable value by exhaustive search over the 16-bit format, in float64).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, roundToBf16 } from '../src/tensor/dtype.js';
import { Rng } from '../src/tensor/rng.js';

function f32FromBits(bits: number): number {
  return new Float32Array(new Uint32Array([bits]).buffer)[0]!;
}

function bitsOfF32(values: Float32Array): Uint32Array {
  return new Uint32Array(values.buffer, values.byteOffset, values.length);
}

function toBf16(...values: number[]): number[] {
  return [...f32ToBf16(new Float32Array(values))];
}

function toF16(...values: number[]): number[] {
  return [...f32ToF16(new Float32Array(values))];
}

function fromF32Bits(...bits: number[]): Float32Array {
  return new Float32Array(new Uint32Array(bits).buffer);
}

function isBf16NaN(h: number): boolean {
  return (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0;
}

function isF16NaN(h: number): boolean {
  return (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
}

/** Random float32 values spread over all exponents (random bit patterns, NaN excluded). */
function randomF32(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const bits = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    let b: number;
    do b = rng.nextU32();
    while ((b & 0x7fffffff) > 0x7f800000);
    bits[i] = b;
  }
  return new Float32Array(bits.buffer);
}

test('bf16ToF32 decodes known bit patterns', () => {
  const decoded = bf16ToF32(new Uint16Array([0x3f80, 0xc020, 0x7f7f, 0x0001, 0x8000, 0x7f80, 0xff80, 0x7fc0]));
  assert.equal(decoded[0], 1);
  assert.equal(decoded[1], -2.5);
  assert.equal(decoded[2], (2 - 2 ** -7) * 2 ** 127); // largest finite bf16
  assert.equal(decoded[3], 2 ** -133); // smallest subnormal bf16
  assert.ok(Object.is(decoded[4], -0));
  assert.equal(decoded[5], Infinity);
  assert.equal(decoded[6], -Infinity);
  assert.ok(Number.isNaN(decoded[7]));
});

test('f32ToBf16 encodes known values and rounds half-way cases to even', () => {
  assert.deepEqual(toBf16(1, -2.5, (2 - 2 ** -7) * 2 ** 127, 2 ** -133, -0, Infinity, -Infinity),
    [0x3f80, 0xc020, 0x7f7f, 0x0001, 0x8000, 0x7f80, 0xff80]);
  const ties = f32ToBf16(fromF32Bits(
    0x3f808000, // exactly between 0x3f80 and 0x3f81: to even 0x3f80
    0x3f818000, // exactly between 0x3f81 and 0x3f82: to even 0x3f82
    0x3f808001, // just above half-way: up
    0x3f807fff, // just below half-way: down
    0x7f7fffff, // largest float32 rounds past the largest bf16: Inf, as in PyTorch
    0xbf808000, // negative tie
  ));
  assert.deepEqual([...ties], [0x3f80, 0x3f82, 0x3f81, 0x3f80, 0x7f80, 0xbf80]);
});

test('f32ToBf16 keeps NaN a NaN, including NaNs whose payload is only in the dropped low bits', () => {
  const out = f32ToBf16(fromF32Bits(0x7fc00000, 0x7f800001, 0xff800001, 0x7fffffff));
  for (const h of out) assert.ok(isBf16NaN(h), `0x${h.toString(16)} is not a bf16 NaN`);
  assert.equal(out[2]! & 0x8000, 0x8000, 'sign kept');
});

test('f32ToBf16 matches the nearest-even reference on random float32 values', () => {
  const x = randomF32(200_000, 1);
  const got = f32ToBf16(x);
  const bits = bitsOfF32(x);
  for (let i = 0; i < x.length; i++) {
    // the two bf16 neighbours of x, compared in float64 (exact for these differences)
    const down = bits[i]! >>> 16;
    const lo = f32FromBits(down << 16);
    const hi = f32FromBits(((down + 1) << 16) >>> 0);
    const v = x[i]!;
    let expected: number;
    if (!Number.isFinite(v)) expected = down;
    else {
      const dLo = Math.abs(v - lo);
      const dHi = Math.abs(hi - v); // hi may be +-Inf (past the largest bf16): then rounding up means Inf
      expected = dLo < dHi || (dLo === dHi && (down & 1) === 0) ? down : down + 1;
      if (!Number.isFinite(hi)) {
        // the tie point between the largest finite bf16 and "Inf" is lo + half an ulp
        const halfUlp = 2 ** 127 * 2 ** -8;
        const over = Math.abs(v) - Math.abs(lo);
        expected = over < halfUlp || (over === halfUlp && (down & 1) === 0) ? down : down + 1;
      }
    }
    if (got[i] !== expected) {
      assert.fail(`f32ToBf16(${v}) = 0x${got[i]!.toString(16)}, expected 0x${expected.toString(16)}`);
    }
  }
});

test('bf16 -> f32 -> bf16 is the identity for every non-signalling bit pattern', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const back = f32ToBf16(bf16ToF32(all));
  for (let h = 0; h < 65536; h++) {
    if (isBf16NaN(h) && (h & 0x40) === 0) assert.ok(isBf16NaN(back[h]!)); // signalling NaN comes back quiet
    else if (back[h] !== h) assert.fail(`0x${h.toString(16)} came back as 0x${back[h]!.toString(16)}`);
  }
});

test('f16ToF32 decodes known bit patterns including subnormals, zeros, Inf and NaN', () => {
  const decoded = f16ToF32(new Uint16Array([0x3c00, 0xc100, 0x7bff, 0x0001, 0x03ff, 0x0400, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0x3555]));
  assert.equal(decoded[0], 1);
  assert.equal(decoded[1], -2.5);
  assert.equal(decoded[2], 65504);
  assert.equal(decoded[3], 2 ** -24);
  assert.equal(decoded[4], 1023 * 2 ** -24);
  assert.equal(decoded[5], 2 ** -14);
  assert.ok(Object.is(decoded[6], -0));
  assert.equal(decoded[7], Infinity);
  assert.equal(decoded[8], -Infinity);
  assert.ok(Number.isNaN(decoded[9]));
  assert.equal(decoded[10], 0.333251953125);
});

test('f32ToF16 encodes known values, overflows to Inf and rounds ties to even (normal and subnormal)', () => {
  assert.deepEqual(toF16(1, -2.5, 65504, 2 ** -24, 2 ** -14, -0, Infinity, -Infinity, 1e6, -1e6),
    [0x3c00, 0xc100, 0x7bff, 0x0001, 0x0400, 0x8000, 0x7c00, 0xfc00, 0x7c00, 0xfc00]);
  assert.deepEqual(toF16(
    65519, // below the half-way point to 65536: stays the largest finite half
    65520, // exactly half-way: ties to the even neighbour, which is Inf
    1 + 2 ** -11, // tie between 0x3c00 and 0x3c01: even 0x3c00
    1 + 3 * 2 ** -11, // tie between 0x3c01 and 0x3c02: even 0x3c02
    2 ** -25, // half the smallest subnormal: ties to even zero
    3 * 2 ** -26, // 0.75 of the smallest subnormal: up to 0x0001
    3 * 2 ** -25, // 1.5 subnormal units: tie to even 0x0002
    5 * 2 ** -25, // 2.5 subnormal units: tie to even 0x0002
    2 ** -14 - 2 ** -25, // half-way between the largest subnormal and the smallest normal: even 0x0400
    1e-10, // far below the subnormals
  ), [0x7bff, 0x7c00, 0x3c00, 0x3c02, 0x0000, 0x0001, 0x0002, 0x0002, 0x0400, 0x0000]);
  const nan = f32ToF16(fromF32Bits(0x7fc00000, 0x7f800001, 0xffc00000));
  for (const h of nan) assert.ok(isF16NaN(h), `0x${h.toString(16)} is not a half NaN`);
});

test('f32ToF16 matches the nearest-even reference on random float32 values', () => {
  // every non-negative finite half in increasing order, plus 65536 standing for Inf (it is where the
  // exponent field overflows into 0x7c00, so ties at 65520 go to even = Inf, like IEEE requires)
  const grid = new Float64Array(0x7c01);
  for (let h = 0; h < 0x7c00; h++) {
    const exponent = h >>> 10;
    const mantissa = h & 0x3ff;
    grid[h] = exponent === 0 ? mantissa * 2 ** -24 : (1 + mantissa / 1024) * 2 ** (exponent - 15);
  }
  grid[0x7c00] = 65536;
  const x = randomF32(100_000, 2);
  // concentrate half of the samples in the half range, where rounding is interesting
  const rng = new Rng(3);
  const next = (): number => rng.uniform();
  for (let i = 0; i < x.length; i += 2) x[i] = (next() - 0.5) * 2 ** Math.floor(next() * 44 - 28);
  const got = f32ToF16(x);
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    const a = Math.abs(v);
    let expected: number;
    if (a >= 65536) expected = 0x7c00;
    else {
      let lo = 0;
      let hi = 0x7c00; // invariant: grid[lo] <= a < grid[hi]
      while (hi - lo > 1) {
        const mid = (lo + hi) >>> 1;
        if (grid[mid]! <= a) lo = mid;
        else hi = mid;
      }
      const dLo = a - grid[lo]!;
      const dHi = grid[hi]! - a;
      expected = dLo < dHi || (dLo === dHi && (lo & 1) === 0) ? lo : hi;
    }
    if (v < 0 || Object.is(v, -0)) expected |= 0x8000;
    if (got[i] !== expected) {
      assert.fail(`f32ToF16(${v}) = 0x${got[i]!.toString(16)}, expected 0x${expected.toString(16)}`);
    }
  }
});

test('f16 -> f32 -> f16 is the identity for every non-NaN bit pattern, NaN stays NaN', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const back = f32ToF16(f16ToF32(all));
  for (let h = 0; h < 65536; h++) {
    if (isF16NaN(h)) assert.ok(isF16NaN(back[h]!), `NaN 0x${h.toString(16)} became 0x${back[h]!.toString(16)}`);
    else if (back[h] !== h) assert.fail(`0x${h.toString(16)} came back as 0x${back[h]!.toString(16)}`);
  }
});

test('conversions write into a given output view and reject a wrong-sized one', () => {
  const big = new Float32Array(6).fill(7);
  bf16ToF32(new Uint16Array([0x3f80, 0xc020]), big.subarray(2, 4));
  assert.deepEqual([...big], [7, 7, 1, -2.5, 7, 7]);
  f16ToF32(new Uint16Array([0x3c00]), big.subarray(5, 6));
  assert.equal(big[5], 1);
  const bits = new Uint16Array(4);
  f32ToBf16(new Float32Array([1, -2.5]), bits.subarray(1, 3));
  assert.deepEqual([...bits], [0, 0x3f80, 0xc020, 0]);
  assert.throws(() => bf16ToF32(new Uint16Array(3), new Float32Array(2)), RangeError);
  assert.throws(() => f32ToF16(new Float32Array(3), new Uint16Array(4)), RangeError);
});

test('roundToBf16 rounds a number as f32ToBf16 rounds a float32 (ties to even, NaN, Inf, overflow)', () => {
  const xs = new Float32Array([0, -0, 1, -1.5, 1 + 2 ** -8, 1 + 2 ** -7 + 2 ** -8, 3.14159, 1e-40, -65504, 3.4e38, Infinity, -Infinity, NaN]);
  const rng = new Rng(5);
  const rand = Float32Array.from({ length: 1000 }, () => (rng.normal() * 10) ** 3);
  for (const x of [...xs, ...rand]) {
    const want = bf16ToF32(f32ToBf16(Float32Array.of(x)))[0]!;
    const got = roundToBf16(x);
    assert.ok(Object.is(got, want) || (Number.isNaN(got) && Number.isNaN(want)), `${x}: ${got} vs ${want}`);
  }
  assert.equal(roundToBf16(1 + 2 ** -8), 1); // a tie goes to the even neighbour
  assert.equal(roundToBf16(1 + 2 ** -7 + 2 ** -8), 1 + 2 ** -6);
});
