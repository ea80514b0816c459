// Every native kernel against the TypeScript reference backend (the executable spec) on random inputs with odd
// sizes, all gemm transpose/accumulate combinations, null gradient outputs, GPT-2's strided q/k/v views, and
// the aliasing the interface allows. The reference computes in float64 and rounds once; the native backend
// accumulates in float32, so results agree to ~1e-5 relative to the output's scale, not bit for bit.
//
// The addon picks AVX-512, AVX2 or portable C++ at load time; the last test reruns this file in child
// processes with ORPO_ISA forcing the slower paths, so all three are checked on a machine that has AVX-512.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { jsKernels } from '../src/backend/js/kernels.js';
import { Bf16Buffer, bf16Carrier, type Kernels } from '../src/backend/kernels.js';
import { bf16ToF32, f32ToBf16 } from '../src/tensor/dtype.js';
import { getNativeKernels } from '../src/backend/index.js';
import { loadNativeAddon } from '../src/backend/native/addon.js';
import { randomInputs } from './helpers/random-inputs.js';

const load = loadNativeAddon();
const nativeOrUndefined = getNativeKernels();
const skip = nativeOrUndefined ? false : `native addon not built (${load.ok ? '' : load.reason})`;
const native = nativeOrUndefined as Kernels;

// ------------------------------------------------------------------------------------------------ helpers

const { randn, randInts } = randomInputs(12345);

/**
 * |actual - expected| <= rtol * (|expected| + mean|expected|): relative where values are large, and relative
 * to the output's typical size where float32 cancellation makes a value small.
 */
function assertClose(what: string, actual: Float32Array, expected: Float32Array, rtol = 1e-5): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let meanAbs = 0;
  for (let i = 0; i < expected.length; i++) meanAbs += Math.abs(expected[i]);
  meanAbs = expected.length ? meanAbs / expected.length : 0;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i];
    const a = actual[i];
    const tol = rtol * (Math.abs(e) + meanAbs) + 1e-30;
    if (!(Math.abs(a - e) <= tol)) {
      assert.fail(`${what}[${i}]: native ${a} vs js ${e} (|diff| ${Math.abs(a - e)} > tol ${tol})`);
    }
  }
}

/** runs `call` on both backends with private copies of `buffers` and compares every buffer afterwards */
function compare(what: string, buffers: Record<string, Float32Array>,
  call: (k: Kernels, b: Record<string, Float32Array>) => void, rtol = 1e-5): void {
  const copy = (): Record<string, Float32Array> =>
    Object.fromEntries(Object.entries(buffers).map(([name, buf]) => [name, buf.slice()]));
  const ref = copy();
  const got = copy();
  call(jsKernels, ref);
  call(native, got);
  for (const name of Object.keys(buffers)) assertClose(`${what} ${name}`, got[name], ref[name], rtol);
}

const ODD = [1, 7, 63, 65, 127];

// ------------------------------------------------------------------------------------------------ GEMM

test('gemm: every transpose/accumulate combination on odd shapes', { skip }, () => {
  const shapes: Array<[number, number, number]> = [
    [1, 1, 1], [7, 63, 65], [63, 65, 127], [127, 7, 1], [65, 127, 63], [33, 129, 300], [5, 3, 0], [1, 300, 70], [3, 65, 127],
  ];
  for (const [M, N, K] of shapes) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        for (const accumulate of [false, true]) {
          const a = randn(M * K);
          const b = randn(K * N);
          compare(`gemm ${M}x${N}x${K} tA=${transA} tB=${transB} acc=${accumulate}`, { c: randn(M * N) },
            (k, x) => k.gemm(x.c, a, b, M, N, K, transA, transB, accumulate), 2e-5);
        }
      }
    }
  }
});

test('gemm: larger than one cache block in every dimension (M > MC, N > NC, K > KC)', { skip }, () => {
  const [M, N, K] = [150, 1100, 300];
  for (const [transA, transB] of [[false, true], [true, false]]) {
    const a = randn(M * K);
    const b = randn(K * N);
    compare(`gemm ${M}x${N}x${K} tA=${transA} tB=${transB}`, { c: randn(M * N) },
      (k, x) => k.gemm(x.c, a, b, M, N, K, transA, transB, true), 2e-5);
  }
});

test('gemm in bf16 mode (operands rounded to bfloat16, float32 sums): every transpose, odd K, small M, K > KC', { skip }, () => {
  const shapes: Array<[number, number, number]> = [[1, 1, 1], [3, 65, 127], [7, 63, 65], [63, 65, 127], [33, 129, 300], [150, 1100, 601]];
  try {
    for (const k of [jsKernels, native]) k.setMatmulBf16(true);
    assert.equal(native.getMatmulBf16(), true);
    for (const [M, N, K] of shapes) {
      for (const [transA, transB] of [[false, false], [false, true], [true, false], [true, true]]) {
        const a = randn(M * K);
        const b = randn(K * N);
        compare(`bf16 gemm ${M}x${N}x${K} tA=${transA} tB=${transB}`, { c: randn(M * N) },
          (k, x) => k.gemm(x.c, a, b, M, N, K, transA, transB, true), 2e-5);
      }
    }
    const [N, C, OC] = [70, 65, 33];
    const inp = randn(N * C);
    const w = randn(OC * C);
    const dout = randn(N * OC);
    compare('bf16 matmulForward', { out: randn(N * OC) }, (k, x) => k.matmulForward(x.out, inp, w, null, N, C, OC), 2e-5);
    compare('bf16 matmulBackward', { dinp: randn(N * C), dw: randn(OC * C) },
      (k, x) => k.matmulBackward(x.dinp, x.dw, null, dout, inp, w, N, C, OC, true), 2e-5);
  } finally {
    for (const k of [jsKernels, native]) k.setMatmulBf16(false);
  }
  // the mode changes the numbers (so the comparisons above are of bf16 products), and switching it off restores them
  const [M, N, K] = [40, 50, 60];
  const a = randn(M * K);
  const b = randn(K * N);
  const run = (on: boolean): Float32Array => {
    native.setMatmulBf16(on);
    const c = new Float32Array(M * N);
    native.gemm(c, a, b, M, N, K, false, false, false);
    native.setMatmulBf16(false);
    return c;
  };
  const f32 = run(false);
  const bf = run(true);
  let maxDiff = 0;
  for (let i = 0; i < f32.length; i++) maxDiff = Math.max(maxDiff, Math.abs(bf[i] - f32[i]));
  assert.ok(maxDiff > 1e-4 && maxDiff < 0.2, `bf16 vs float32 products differ by ${maxDiff}`);
  assert.deepEqual(run(false), f32);
});

test('gemm: the result does not depend on the thread count', { skip }, () => {
  const [M, N, K] = [200, 300, 100];
  const a = randn(M * K);
  const b = randn(K * N);
  const before = native.getThreads();
  const results = [1, 2, 3].map((threads) => {
    native.setThreads(threads);
    const c = new Float32Array(M * N);
    native.gemm(c, a, b, M, N, K, false, false, false);
    return c;
  });
  native.setThreads(before);
  assert.deepEqual(results[1], results[0]);
  assert.deepEqual(results[2], results[0]);
});

test('thread pool: every task of every job runs exactly once, whatever the thread and task counts', { skip }, () => {
  // axpy adds: a task run twice (two workers claiming it) or never (a home range lost to a stale claim word) leaves
  // a wrong multiple of src in its chunk. Task counts below, at and above the thread count, uneven home ranges,
  // many short jobs back to back (the claim words are reset and reused by each), oversubscribed threads.
  const grain = 1 << 15;  // kPointwiseGrain: one task per this many elements, at most one per thread
  const before = native.getThreads();
  try {
    for (const threads of [2, 3, 7, 16]) {
      native.setThreads(threads);
      for (const N of [grain + 1, 5 * grain + 3, threads * grain, 17 * grain + 9]) {
        const src = new Float32Array(N).map((_, i) => (i % 7) + 1);
        const dst = new Float32Array(N);
        const jobs = 200;
        for (let j = 0; j < jobs; j++) native.axpy(dst, src, 1, N);
        const bad = dst.findIndex((x, i) => x !== jobs * src[i]);
        assert.equal(bad, -1, `${threads} threads, N ${N}: element ${bad} is ${dst[bad]}, expected ${jobs * src[bad]}`);
      }
    }
  } finally {
    native.setThreads(before);
  }
});

test('matmulForward/Backward: with and without bias, every null-gradient combination', { skip }, () => {
  for (const [N, C, OC] of [[1, 1, 1], [1, 65, 300], [7, 65, 63], [65, 127, 7], [130, 64, 96]]) {
    const inp = randn(N * C);
    const weight = randn(OC * C);
    const bias = randn(OC);
    for (const b of [bias, null]) {
      compare(`matmulForward ${N}x${C}->${OC} bias=${b !== null}`, { out: randn(N * OC) },
        (k, x) => k.matmulForward(x.out, inp, weight, b, N, C, OC));
    }
    const dout = randn(N * OC);
    // bit 3: dinp written instead of accumulated (its random initial values must not survive)
    for (const mask of [0b111, 0b011, 0b101, 0b110, 0b001, 0b000, 0b1111, 0b1100]) {
      compare(`matmulBackward ${N}x${C}->${OC} mask=${mask}`,
        { dinp: randn(N * C), dweight: randn(OC * C), dbias: randn(OC) },
        (k, x) => k.matmulBackward(mask & 4 ? x.dinp : null, mask & 2 ? x.dweight : null, mask & 1 ? x.dbias : null,
          dout, inp, weight, N, C, OC, !(mask & 8)), 2e-5);
    }
  }
});

// ------------------------------------------------------------------------------------------------ bf16 weights

/**
 * n random bfloat16 values as a Bf16Buffer (an odd n leaves half of the carrier's last element empty), starting
 * `offset` elements into its carrier (a view: the kernels must honour its byteOffset), and the same values widened
 */
function bf16Weight(n: number, offset = 0): { w: Bf16Buffer<Float32Array>; wide: Float32Array } {
  const bits = f32ToBf16(randn(n));
  const carrier = new Float32Array(offset + Math.ceil(n / 2));
  carrier.fill(Number.NaN, 0, offset); // values before the view: a kernel reading them would show NaNs
  carrier.set(bf16Carrier(bits), offset);
  return { w: new Bf16Buffer(carrier.subarray(offset), n), wide: bf16ToF32(bits) };
}

/** the bf16 paths this table can take (dpbf16: AVX-512 with VDPBF16PS) */
function bf16Paths(): Array<'fma' | 'dpbf16'> {
  return load.ok && load.addon.kernelInfo().bf16.dpbf16 ? ['fma', 'dpbf16'] : ['fma'];
}

// 1..4 rows (decoding: the weight read in place), edge tiles, odd C (a half-empty last bf16 pair), K past one KC block
// (C 601 forward, OC 1100 backward) and N past one NC block (OC 1100 forward)
const BF16_SHAPES: Array<[number, number, number]> = [
  [1, 1, 1], [1, 65, 300], [2, 7, 33], [3, 65, 127], [4, 130, 97], [5, 33, 65], [7, 65, 63], [65, 127, 7], [33, 129, 300],
  [150, 601, 1100],
];

test('bf16 weights: matmulForwardBf16 (bias or not) and matmulBackwardBf16 against the reference, odd shapes, 1..4 rows', { skip }, () => {
  for (const [N, C, OC] of BF16_SHAPES) {
    const { w } = bf16Weight(OC * C, 3);
    const inp = randn(N * C);
    const bias = randn(OC);
    for (const b of [bias, null]) {
      compare(`matmulForwardBf16 ${N}x${C}->${OC} bias=${b !== null}`, { out: randn(N * OC) },
        (k, x) => k.matmulForwardBf16(x.out, inp, w, b, N, C, OC), 2e-5);
    }
    const dout = randn(N * OC);
    for (const acc of [true, false]) {
      compare(`matmulBackwardBf16 ${N}x${C}->${OC} accumulate=${acc}`, { dinp: randn(N * C) },
        (k, x) => k.matmulBackwardBf16(x.dinp, dout, w, N, C, OC, acc), 2e-5);
    }
  }
});

test('bf16 weights: the numbers of bf16 mode on the widened weight, on each bf16 path, whatever setMatmulBf16 says', { skip }, () => {
  const addon = load.ok ? load.addon : undefined;
  assert.ok(addon);
  try {
    for (const path of bf16Paths()) {
      addon.configureGemm(path, null);
      for (const [N, C, OC] of BF16_SHAPES) {
        const { w, wide } = bf16Weight(OC * C);
        const inp = randn(N * C);
        const bias = randn(OC);
        const dout = randn(N * OC);
        const dinp0 = randn(N * C);
        const label = `${path} ${N}x${C}->${OC}`;
        native.setMatmulBf16(true);
        const mode = { out: new Float32Array(N * OC), dinp: dinp0.slice() };
        native.matmulForward(mode.out, inp, wide, bias, N, C, OC);
        native.matmulBackward(mode.dinp, null, null, dout, inp, wide, N, C, OC, true);
        const runs = [true, false].map((on) => {
          native.setMatmulBf16(on);
          const r = { out: new Float32Array(N * OC), dinp: dinp0.slice() };
          native.matmulForwardBf16(r.out, inp, w, bias, N, C, OC);
          native.matmulBackwardBf16(r.dinp, dout, w, N, C, OC, true);
          return r;
        });
        native.setMatmulBf16(false);
        assert.deepEqual(runs[1], runs[0], `${label}: bf16 weights depend on setMatmulBf16`);
        if (N > 4) {
          // the same blocks, packing and micro-kernels as bf16 mode on the widened weight: the same bits
          assert.deepEqual(runs[0].out, mode.out, `${label} forward`);
          assert.deepEqual(runs[0].dinp, mode.dinp, `${label} backward`);
        } else {
          // decoding reads the weight in place instead of packing it: the same products, summed in another order
          assertClose(`${label} forward (decode)`, runs[0].out, mode.out, 2e-5);
          assertClose(`${label} backward (decode)`, runs[0].dinp, mode.dinp, 2e-5);
        }
      }
    }
  } finally {
    native.setMatmulBf16(false);
    addon.configureGemm('auto', null);
  }
  // bf16 products, not float32 ones: the float32 product with the widened weight differs by about a bf16 rounding
  const [N, C, OC] = [40, 60, 50];
  const { w, wide } = bf16Weight(OC * C);
  const inp = randn(N * C);
  const f32 = new Float32Array(N * OC);
  const bf = new Float32Array(N * OC);
  native.matmulForward(f32, inp, wide, null, N, C, OC);
  native.matmulForwardBf16(bf, inp, w, null, N, C, OC);
  let maxDiff = 0;
  for (let i = 0; i < f32.length; i++) maxDiff = Math.max(maxDiff, Math.abs(bf[i] - f32[i]));
  assert.ok(maxDiff > 1e-4 && maxDiff < 0.2, `bf16-weight vs float32 products differ by ${maxDiff}`);
});

test('bf16 weights: embeddingForwardBf16 written and accumulated, repeated ids, odd widths, an odd-length table', { skip }, () => {
  for (const [N, C, V] of [[1, 1, 1], [7, 63, 3], [127, 65, 51], [300, 200, 7]]) {
    const ids = randInts(N, 0, V);
    ids[0] = V - 1; // the last row: with an odd V * C its last value is the low half of the carrier's last element
    const { w, wide } = bf16Weight(V * C, 1);
    for (const accumulate of [false, true]) {
      compare(`embeddingForwardBf16 N=${N} C=${C} V=${V} acc=${accumulate}`, { out: randn(N * C) },
        (k, x) => k.embeddingForwardBf16(x.out, ids, w, N, C, accumulate), 0);
      // widening is exact: the float32 lookup of the widened table, bit for bit
      const got = randn(N * C);
      const want = got.slice();
      native.embeddingForwardBf16(got, ids, w, N, C, accumulate);
      native.embeddingForward(want, ids, wide, N, C, accumulate);
      assert.deepEqual(got, want, `embeddingForwardBf16 N=${N} C=${C} V=${V} acc=${accumulate} vs the widened table`);
    }
  }
});

test('bf16 weights: the binding checks the Bf16Buffer (object, carrier type and size, length against the sizes, ids)', { skip }, () => {
  const out = new Float32Array(6);
  const inp = new Float32Array(6);
  const w = new Bf16Buffer(new Float32Array(3), 6); // (OC 2, C 3)
  native.matmulForwardBf16(out, inp, w, null, 2, 3, 2);
  const as = (x: unknown): Bf16Buffer<Float32Array> => x as Bf16Buffer<Float32Array>;
  assert.throws(() => native.matmulForwardBf16(out, inp, as(new Float32Array(3)), null, 2, 3, 2),
    /matmulForwardBf16: 'weight' must be a Bf16Buffer \(bfloat16 values in a Float32Array carrier\), not a typed array/);
  assert.throws(() => native.matmulForwardBf16(out, inp, as({ data: new Float32Array(3) }), null, 2, 3, 2),
    /'weight' must be a Bf16Buffer: an object with a Float32Array 'data' and a number 'length'/);
  assert.throws(() => native.matmulForwardBf16(out, inp, as(null), null, 2, 3, 2), /'weight' must be a Bf16Buffer/);
  assert.throws(() => native.matmulForwardBf16(out, inp, new Bf16Buffer(new Float32Array(2), 6), null, 2, 3, 2),
    /matmulForwardBf16: 'weight.data' has 2 elements but the sizes given need 3/);
  assert.throws(() => native.matmulForwardBf16(out, inp, as(new Bf16Buffer(new Int32Array(3), 6)), null, 2, 3, 2),
    /'weight.data' must be a Float32Array/);
  assert.throws(() => native.matmulForwardBf16(out, inp, new Bf16Buffer(new Float32Array(3), 5), null, 2, 3, 2),
    /'weight' holds 5 bfloat16 values but the sizes given need 6/);
  assert.throws(() => native.matmulForwardBf16(out, inp, new Bf16Buffer(new Float32Array(3), 2.5), null, 2, 3, 2),
    /'weight.length' must be a non-negative integer/);
  assert.throws(() => native.matmulBackwardBf16(new Float32Array(5), new Float32Array(4), w, 2, 3, 2, true),
    /matmulBackwardBf16: 'dinp' has 5 elements but the sizes given need 6/);
  assert.throws(() => native.matmulBackwardBf16(new Float32Array(6), new Float32Array(4), new Bf16Buffer(new Float32Array(2), 3), 2, 3, 2, true),
    /matmulBackwardBf16: 'weight' holds 3 bfloat16 values but the sizes given need 6/);
  // a table of 5 values with C = 2: two whole rows (the fifth value is no row)
  const table = new Bf16Buffer(new Float32Array(3), 5);
  native.embeddingForwardBf16(new Float32Array(4), Int32Array.of(0, 1), table, 2, 2, false);
  assert.throws(() => native.embeddingForwardBf16(new Float32Array(4), Int32Array.of(0, 2), table, 2, 2, false),
    /embeddingForwardBf16: ids\[1\] = 2 is outside the table's 2 rows/);
  assert.throws(() => native.embeddingForwardBf16(new Float32Array(4), Int32Array.of(0, 1), as({ data: new Float32Array(2), length: 5 }), 2, 2, false),
    /'table.data' has 2 elements but the sizes given need 3/);
});

// ------------------------------------------------------------------------------------------------ embeddings

test('embedding: gather (written and accumulated) and scatter-add with repeated ids', { skip }, () => {
  for (const [N, C, V] of [[1, 1, 1], [7, 63, 3], [127, 65, 50], [300, 200, 7]]) {
    const ids = randInts(N, 0, V);
    const table = randn(V * C);
    for (const accumulate of [false, true]) {
      compare(`embeddingForward N=${N} C=${C} acc=${accumulate}`, { out: randn(N * C) },
        (k, x) => k.embeddingForward(x.out, ids, table, N, C, accumulate));
    }
    const dout = randn(N * C);
    compare(`embeddingBackward N=${N} C=${C} V=${V}`, { dtable: randn(V * C) },
      (k, x) => k.embeddingBackward(x.dtable, dout, ids, N, C));
  }
});

test('zero, row gather and scatter-add (the embedding kernels on views), dropout (the reference mask, bit for bit)', { skip }, () => {
  for (const N of [...ODD, 100_003]) {
    const x = randn(N + 3);
    native.zero(x.subarray(1), N);
    assert.ok(x.subarray(1, N + 1).every((v) => Object.is(v, 0)) && x[0] !== 0 && x[N + 1] !== 0, `zero ${N}: exactly N zeros`);
    const inp = randn(N);
    for (const p of [0.05, 0.5, 0.9]) {
      for (const key of [0, 1, 0x9e3779b9, 0xffffffff]) {
        const what = `dropout N=${N} p=${p} key=${key}`;
        const ref = { out: randn(N), dinp: randn(N) };
        const got = { out: ref.out.slice(), dinp: ref.dinp.slice() };
        jsKernels.dropoutForward(ref.out, inp, N, key, p);
        native.dropoutForward(got.out, inp, N, key, p);
        jsKernels.dropoutBackward(ref.dinp, inp, N, key, p);
        native.dropoutBackward(got.dinp, inp, N, key, p);
        // forward bit for bit; backward's multiply-add may be one FMA natively (a rounding apart), but a wrong mask
        // moves an element by a whole dout / (1 - p)
        assert.deepEqual(got.out, ref.out, `${what}: not the reference's mask and values`);
        assertClose(`${what} backward`, got.dinp, ref.dinp, 2e-7);
        if (N > 1000) {
          const dropped = got.out.reduce((n, v) => n + (v === 0 ? 1 : 0), 0) / N;
          assert.ok(Math.abs(dropped - p) < 0.02, `${what}: dropped ${dropped}`);
        }
      }
    }
  }
  // the rows of a (rows, C) view gathered and scattered back, a row twice
  const [M, C] = [9, 37];
  const hidden = randn(20 * C);
  const rows = Int32Array.from([0, 19, 3, 3, 7, 12, 1, 18, 5]);
  compare('gatherRows', { out: randn(M * C) }, (k, b) => k.gatherRows(b.out, hidden, rows, M, C), 0);
  const dout = randn(M * C);
  compare('scatterAddRows', { dinp: randn(20 * C) }, (k, b) => k.scatterAddRows(k.view(b.dinp, 0, 20 * C), dout, rows, M, C), 1e-7);
  assert.throws(() => native.dropoutForward(new Float32Array(4), new Float32Array(4), 4, -1, 0.1), /'key' must be an integer in \[0, 2\^32\)/);
  assert.throws(() => native.dropoutBackward(new Float32Array(4), new Float32Array(4), 4, 7, 1), /'p' must be in \[0, 1\)/);
  assert.throws(() => native.gatherRows(new Float32Array(C), hidden, Int32Array.from([20]), 1, C), /outside the table's 20 rows/);
});

// ------------------------------------------------------------------------------------------------ norms

test('layernorm and rmsnorm forward/backward, with null parameter gradients', { skip }, () => {
  for (const N of ODD) {
    for (const C of [1, 7, 64, 127, 768]) {
      const inp = randn(N * C, 3);
      const weight = randn(C);
      const bias = randn(C);
      const mean = new Float32Array(N);
      const rstd = new Float32Array(N);
      compare(`layernormForward ${N}x${C}`, { out: randn(N * C), mean: randn(N), rstd: randn(N) },
        (k, x) => k.layernormForward(x.out, x.mean, x.rstd, inp, weight, bias, N, C, 1e-5));
      jsKernels.layernormForward(new Float32Array(N * C), mean, rstd, inp, weight, bias, N, C, 1e-5);
      const dout = randn(N * C);
      for (const withParams of [true, false]) {
        compare(`layernormBackward ${N}x${C} params=${withParams}`, { dinp: randn(N * C), dw: randn(C), db: randn(C) },
          (k, x) => k.layernormBackward(x.dinp, withParams ? x.dw : null, withParams ? x.db : null, dout, inp, weight,
            mean, rstd, N, C), 5e-5);
      }
      compare(`rmsnormForward ${N}x${C}`, { out: randn(N * C), rstd: randn(N) },
        (k, x) => k.rmsnormForward(x.out, x.rstd, inp, weight, N, C, 1e-6));
      jsKernels.rmsnormForward(new Float32Array(N * C), rstd, inp, weight, N, C, 1e-6);
      for (const withParams of [true, false]) {
        compare(`rmsnormBackward ${N}x${C} params=${withParams}`, { dinp: randn(N * C), dw: randn(C) },
          (k, x) => k.rmsnormBackward(x.dinp, withParams ? x.dw : null, dout, inp, weight, rstd, N, C), 5e-5);
      }
    }
  }
});

// ------------------------------------------------------------------------------------------------ RoPE

test('rope forward (also in place) and backward, with a position offset', { skip }, () => {
  for (const [B, T, H, HD, pos0] of [[1, 1, 1, 2, 0], [2, 7, 3, 16, 5], [1, 65, 4, 64, 0], [2, 33, 2, 130, 3]]) {
    const P = pos0 + T + 2;
    const cos = randn(P * (HD / 2));
    const sin = randn(P * (HD / 2));
    const inp = randn(B * T * H * HD);
    compare(`ropeForward ${B},${T},${H},${HD}`, { out: randn(inp.length) },
      (k, x) => k.ropeForward(x.out, inp, cos, sin, B, T, H, HD, pos0));
    compare(`ropeForward in place ${B},${T},${H},${HD}`, { x: inp },
      (k, x) => k.ropeForward(x.x, x.x, cos, sin, B, T, H, HD, pos0));
    const dout = randn(inp.length);
    for (const acc of [true, false]) {
      compare(`ropeBackward ${B},${T},${H},${HD} accumulate=${acc}`, { dinp: randn(inp.length) },
        (k, x) => k.ropeBackward(x.dinp, dout, cos, sin, B, T, H, HD, pos0, acc));
    }
  }
});

// ------------------------------------------------------------------------------------------------ attention

/** runs forward (compared) then backward (compared) for one configuration; q/k/v may be strided views */
function checkAttention(label: string, B: number, T: number, NH: number, NKV: number, HD: number, fused: boolean,
  hidden: Int32Array | null = null): void {
  const C = NH * HD;
  const KVC = NKV * HD;
  // fused: one (B,T,C+2*KVC) buffer holding q|k|v per row, as GPT-2's c_attn produces it
  const qStride = fused ? C + 2 * KVC : C;
  const kvStride = fused ? C + 2 * KVC : KVC;
  const rows = B * T;
  const views = (buf: Float32Array): [Float32Array, Float32Array, Float32Array] => fused
    ? [buf, buf.subarray(C), buf.subarray(C + KVC)]
    : [buf.subarray(0, rows * C), buf.subarray(rows * C, rows * (C + KVC)), buf.subarray(rows * (C + KVC))];
  const qkv = randn(rows * (C + 2 * KVC), 2);
  const [q, k, v] = views(qkv);
  compare(`attentionForward ${label}`, { out: randn(rows * C), lse: randn(B * NH * T) },
    (kern, x) => kern.attentionForward(x.out, x.lse, q, k, v, B, T, NH, NKV, HD, qStride, kvStride, hidden), 2e-5);
  const out = new Float32Array(rows * C);
  const lse = new Float32Array(B * NH * T);
  jsKernels.attentionForward(out, lse, q, k, v, B, T, NH, NKV, HD, qStride, kvStride, hidden);
  const dout = randn(rows * C);
  compare(`attentionBackward ${label}`, { dqkv: randn(qkv.length) }, (kern, x) => {
    const [dq, dk, dv] = views(x.dqkv);
    kern.attentionBackward(dq, dk, dv, dout, q, k, v, out, lse, B, T, NH, NKV, HD, qStride, kvStride, hidden);
  }, 5e-5);
  // the backward's two forms (one task per batch x kv head; split by key and query tiles where there are fewer such
  // tasks than threads) compute the same numbers: 1 thread and 16 (on any machine: the pool oversubscribes)
  const grads = (threads: number): Float32Array => {
    const before = native.getThreads();
    native.setThreads(threads);
    try {
      const dqkv = new Float32Array(qkv.length).fill(0.25);
      const [dq, dk, dv] = views(dqkv);
      native.attentionBackward(dq, dk, dv, dout, q, k, v, out, lse, B, T, NH, NKV, HD, qStride, kvStride, hidden);
      return dqkv;
    } finally {
      native.setThreads(before);
    }
  };
  assert.deepEqual(grads(16), grads(1), `attentionBackward ${label}: the split form's numbers differ from the fused form's`);
}

test('attention forward/backward: odd lengths, grouped-query heads, several score tiles', { skip }, () => {
  checkAttention('B1 T1 NH1 HD1', 1, 1, 1, 1, 1, false);
  checkAttention('B2 T7 NH4 NKV2 HD16', 2, 7, 4, 2, 16, false);
  checkAttention('B1 T65 NH2 NKV1 HD32', 1, 65, 2, 1, 32, false);
  checkAttention('B2 T127 NH4 NKV4 HD8', 2, 127, 4, 4, 8, false);
  checkAttention('B1 T150 NH6 NKV2 HD64', 1, 150, 6, 2, 64, false);
  // the forward's transposed scores: whole query tiles (every lane a real query), and 4 query heads per kv head
  checkAttention('B2 T256 NH6 NKV2 HD32', 2, 256, 6, 2, 32, false);
  checkAttention('B1 T200 NH8 NKV2 HD64', 1, 200, 8, 2, 64, false);
});

test('attention with hidden keys (shared prefix, two continuations): tiles skipped, split and masked', { skip }, () => {
  // spans inside one key tile, across tile borders, starting at 0 (no prefix), empty, and up to T
  const hidden = Int32Array.from([40, 100, 0, 70, 63, 65, 0, 0, 5, 150]);
  checkAttention('hidden B5 T150 NH6 NKV2 HD32', 5, 150, 6, 2, 32, false, hidden);
  checkAttention('hidden fused B5 T150 NH4 NKV4 HD16', 5, 150, 4, 4, 16, true, hidden);
  checkAttention('hidden B1 T9 NH2 NKV1 HD64', 1, 9, 2, 1, 64, false, Int32Array.from([2, 5]));
  const q = new Float32Array(2 * 4 * 8);
  assert.throws(() => native.attentionForward(new Float32Array(2 * 4 * 8), new Float32Array(2 * 2 * 4), q, q, q,
    2, 4, 2, 2, 4, 8, 8, Int32Array.from([1, 2, 3, 5])), /hidden keys of row 1 are \[3, 5\)/);
});

test('attentionDecode (generation over a cache): prefill, one new token, several, odd sizes, fused strides', { skip }, () => {
  for (const [T, pos0, NH, NKV, HD, fused] of [[1, 0, 1, 1, 1, false], [7, 0, 4, 2, 16, false], [1, 130, 6, 2, 32, false],
    [5, 63, 4, 4, 8, true], [1, 200, 8, 2, 64, false], [70, 65, 2, 1, 32, false]] as const) {
    const C = NH * HD;
    const KVC = NKV * HD;
    const L = pos0 + T;
    const qStride = fused ? 3 * C : C;
    const kvStride = fused ? 3 * C : KVC;
    const q = randn(T * qStride);
    const k = randn(L * kvStride);
    const v = randn(L * kvStride);
    compare(`attentionDecode T${T} pos0 ${pos0} NH${NH} NKV${NKV} HD${HD}${fused ? ' fused' : ''}`, { out: randn(T * C) },
      (kern, x) => kern.attentionDecode(x.out, q, k, v, T, pos0, NH, NKV, HD, qStride, kvStride), 2e-5);
  }
  assert.throws(() => native.attentionDecode(new Float32Array(8), new Float32Array(8), new Float32Array(8), new Float32Array(8),
    1, 1, 2, 2, 4, 8, 8), /'k' has 8 elements but the sizes given need 16/);
});

test('attention: strided q/k/v views into a fused qkv buffer (GPT-2, stride 3C)', { skip }, () => {
  checkAttention('fused B2 T63 NH3 HD16', 2, 63, 3, 3, 16, true);
  checkAttention('fused GQA B1 T70 NH4 NKV2 HD8', 1, 70, 4, 2, 8, true);
});

// ------------------------------------------------------------------------------------------------ pointwise

test('swiglu, gelu, add (also aliased), axpy', { skip }, () => {
  for (const N of [...ODD, 100_000]) {
    const gate = randn(N, 8);
    const up = randn(N, 2);
    const dout = randn(N);
    compare(`swigluForward ${N}`, { out: randn(N) }, (k, x) => k.swigluForward(x.out, gate, up, N));
    for (const acc of [true, false]) {
      compare(`swigluBackward ${N} accumulate=${acc}`, { dg: randn(N), du: randn(N) },
        (k, x) => k.swigluBackward(x.dg, x.du, dout, gate, up, N, acc));
      compare(`geluBackward ${N} accumulate=${acc}`, { dinp: randn(N) }, (k, x) => k.geluBackward(x.dinp, dout, gate, N, acc));
    }
    compare(`geluForward ${N}`, { out: randn(N) }, (k, x) => k.geluForward(x.out, gate, N));
    compare(`add ${N}`, { out: randn(N) }, (k, x) => k.add(x.out, gate, up, N));
    compare(`add aliased ${N}`, { a: gate, b: up }, (k, x) => {
      k.add(x.a, x.a, x.b, N);
      k.add(x.b, x.a, x.b, N);
    });
    compare(`axpy ${N}`, { dst: randn(N) }, (k, x) => k.axpy(x.dst, up, -0.37, N));
  }
});

// ------------------------------------------------------------------------------------------------ loss head

test('logprob forward/backward: rows without targets, dlogits aliasing logits', { skip }, () => {
  for (const [N, V] of [[1, 1], [7, 63], [5, 1000], [3, 32001]]) {
    const logits = randn(N * V, 6);
    const targets = randInts(N, -1, V);
    targets[0] = V - 1;
    if (N > 1) targets[1] = -1;
    compare(`logprobForward ${N}x${V}`, { logp: randn(N), lse: randn(N) },
      (k, x) => k.logprobForward(x.logp, x.lse, logits, targets, N, V));
    const logp = new Float32Array(N);
    const lse = new Float32Array(N);
    jsKernels.logprobForward(logp, lse, logits, targets, N, V);
    const dlogp = randn(N);
    compare(`logprobBackward ${N}x${V}`, { dlogits: randn(N * V) },
      (k, x) => k.logprobBackward(x.dlogits, dlogp, logits, lse, targets, N, V));
    compare(`logprobBackward in place ${N}x${V}`, { logits },
      (k, x) => k.logprobBackward(x.logits, dlogp, x.logits, lse, targets, N, V));
  }
});

/**
 * logits (N,V) whose rows cycle through the cases the argmax's tie rule must get right: the maximum twice (in one
 * 64-float compare block, in different blocks, in the scalar tail), a constant row, a unique maximum in the last
 * element; the remaining rows stay random. Returns the logits and the argmax torch.argmax gives (first maximum).
 */
function tiedLogits(N: number, V: number): { logits: Float32Array; firstMax: Int32Array } {
  const logits = randn(N * V, 6);
  for (let n = 0; n < N; n++) {
    const row = logits.subarray(n * V, n * V + V);
    const at = (i: number) => Math.min(V - 1, Math.max(0, i));
    switch (n % 6) {
      case 0: row[at(3)] = 9; row[at(V - 1)] = 9; break; // far apart (across blocks when V > 64)
      case 1: row[at(V >> 1)] = 9; row[at((V >> 1) + 1)] = 9; row[at((V >> 1) + 5)] = 9; break; // neighbours
      case 2: row.fill(0.25); break; // all equal: index 0
      case 3: row[V - 1] = 9; break; // unique, in the tail past the last whole vector
      case 4: row[at(V - 2)] = 9; row[V - 1] = 9; break; // both in the tail
      default: break; // random
    }
  }
  const firstMax = new Int32Array(N);
  for (let n = 0; n < N; n++) {
    const row = logits.subarray(n * V, n * V + V);
    firstMax[n] = row.indexOf(Math.max(...row));
  }
  return { logits, firstMax };
}

test('logitsStats: row means and first-maximum argmax, with ties in and across vector blocks, V not a multiple of the width', { skip }, () => {
  for (const [N, V] of [[1, 1], [6, 7], [12, 63], [6, 65], [7, 129], [6, 1000], [3, 32001]]) {
    const { logits, firstMax } = tiedLogits(N, V);
    const mean = { js: new Float32Array(N), native: new Float32Array(N) };
    const argmax = { js: new Int32Array(N).fill(-7), native: new Int32Array(N).fill(-7) };
    jsKernels.logitsStats(mean.js, argmax.js, logits, N, V);
    native.logitsStats(mean.native, argmax.native, logits, N, V);
    assert.deepEqual(argmax.native, argmax.js, `argmax ${N}x${V}`);
    assert.deepEqual(argmax.js, firstMax, `argmax ${N}x${V} is the first maximum`);
    // both sum in float64: the means differ at most by the final rounding to float32
    assertClose(`logitsStats mean ${N}x${V}`, mean.native, mean.js, 1e-6);
  }
  // a row masked to -Infinity everywhere (argmax 0, mean -Infinity) and one with some -Infinity entries; views
  const V = 67;
  const logits = randn(3 * V + 1, 2).subarray(1);
  logits.subarray(0, V).fill(-Infinity);
  for (let j = 0; j < V; j += 3) logits[V + j] = -Infinity;
  for (const k of [jsKernels, native]) {
    const out = new Float32Array(4);
    const arg = new Int32Array(4);
    k.logitsStats(out.subarray(1), arg.subarray(1), logits, 3, V);
    assert.equal(out[0], 0, `${k.name}: wrote before the mean view`);
    assert.equal(out[1], -Infinity, `${k.name}: mean of a row of -Infinity`);
    assert.equal(out[2], -Infinity, `${k.name}: mean of a row holding -Infinity`);
    assert.equal(arg[1], 0, `${k.name}: argmax of a row of -Infinity`);
    const row = logits.subarray(V, 2 * V);
    assert.equal(arg[2], row.indexOf(Math.max(...row)), `${k.name}: argmax past the -Infinity entries`);
  }
});

// ------------------------------------------------------------------------------------------------ optimizer

test('adamw, sumSquares, scale', { skip }, () => {
  for (const N of [...ODD, 100_003]) {
    const grads = randn(N);
    for (const step of [1, 10]) {
      compare(`adamwStep ${N} step ${step}`, { p: randn(N), m: randn(N, 0.1), v: randn(N, 0.1).map(Math.abs) },
        (k, x) => k.adamwStep(x.p, grads, x.m, x.v, N, 1e-3, 0.9, 0.999, 1e-8, 0.01, step));
    }
    const x = randn(N, 3);
    const expected = jsKernels.sumSquares(x, N);
    const actual = native.sumSquares(x, N);
    assert.ok(Math.abs(actual - expected) <= 1e-12 * expected, `sumSquares ${N}: ${actual} vs ${expected}`);
    compare(`scale ${N}`, { x }, (k, b) => k.scale(b.x, 0.731, N));
  }
});

// ------------------------------------------------------------------------------------------------ validation

test('the binding refuses wrong lengths, float64 buffers and out-of-range indices instead of reading out of bounds',
  { skip }, () => {
    const small = new Float32Array(10);
    assert.throws(() => native.gemm(small, new Float32Array(100), new Float32Array(100), 10, 10, 10, false, false, false),
      /gemm: 'c' has 10 elements but the sizes given need 100/);
    assert.throws(() => native.scale(new Float64Array(4) as unknown as Float32Array, 2, 4), /Float32Array/);
    assert.throws(() => native.embeddingForward(new Float32Array(4), Int32Array.of(0, 3), new Float32Array(6), 2, 2, false),
      /ids\[1\] = 3 is outside the table's 3 rows/);
    assert.throws(() => native.logprobForward(new Float32Array(1), new Float32Array(1), new Float32Array(4),
      Int32Array.of(4), 1, 4), /targets\[0\] = 4/);
    assert.throws(() => native.attentionForward(new Float32Array(8), new Float32Array(2), small, small, small,
      1, 2, 3, 2, 4, 12, 8), /NH \(3\) must be a multiple of NKV \(2\)/);
    assert.throws(() => native.axpy(small.subarray(2), small, 1, 10), /'dst' has 8 elements/);
    assert.throws(() => native.logitsStats(new Float32Array(2), new Float32Array(2) as unknown as Int32Array,
      new Float32Array(8), 2, 4), /logitsStats: 'argmax' must be a Int32Array/);
    assert.throws(() => native.logitsStats(new Float32Array(2), new Int32Array(1), new Float32Array(8), 2, 4),
      /'argmax' has 1 elements but the sizes given need 2/);
    assert.throws(() => native.logitsStats(new Float32Array(2), new Int32Array(2), new Float32Array(7), 2, 4),
      /'logits' has 7 elements but the sizes given need 8/);
    assert.throws(() => native.logitsStats(new Float32Array(1), new Int32Array(1), new Float32Array(0), 1, 0),
      /V must be at least 1/);
    assert.throws(() => native.setThreads(0), /thread count/);
  });

// ------------------------------------------------------------------------------------------------ other ISAs

test('the AVX2 and portable C++ kernels agree with the reference too (child processes with ORPO_ISA)',
  { skip: skip || (process.env.ORPO_ISA ? 'already running under a forced ORPO_ISA' : false) }, () => {
    const self = fileURLToPath(import.meta.url);
    const isas = process.arch === 'x64' ? ['avx2', 'generic'] : ['generic'];
    for (const isa of isas) {
      const child = spawnSync(process.execPath, ['--test', self], {
        env: { ...process.env, ORPO_ISA: isa }, encoding: 'utf8', timeout: 120_000,
      });
      assert.equal(child.status, 0, `ORPO_ISA=${isa} run failed:\n${child.stdout}\n${child.stderr}`);
    }
  });

test('ORPO_ISA selects the kernels the child runs', { skip: skip || !process.env.ORPO_ISA }, () => {
  if (!load.ok) return;
  const want = process.env.ORPO_ISA === 'generic' && process.arch === 'arm64' ? 'neon' : process.env.ORPO_ISA;
  assert.equal(load.addon.isa(), want);
});
