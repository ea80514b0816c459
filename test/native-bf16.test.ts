// The bf16 matrix products take one of two paths on AVX-512 (VDPBF16PS on bf16 pairs, or bf16-rounded operands
// through the float32 FMA kernel), chosen by a probe at first use; the GEMM's cache blocks come from the detected
// cache sizes. Every path and block choice must compute what the bf16 option defines (operands rounded to bf16,
// float32 sums), so each is held to the TypeScript reference here: forced in this process with configureGemm, and
// forced at start-up with ORPO_BF16_KERNEL / ORPO_GEMM_BLOCKS / ORPO_CACHE_SIZES in child processes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { jsKernels } from '../src/backend/js/kernels.js';
import { Bf16Buffer, bf16Carrier, type Kernels } from '../src/backend/kernels.js';
import { bf16ToF32, f32ToBf16 } from '../src/tensor/dtype.js';
import { getNativeKernels } from '../src/backend/index.js';
import { loadNativeAddon, type NativeAddon, type NativeKernelInfo } from '../src/backend/native/addon.js';
import { bf16SlowerNote } from '../src/backend/native/kernels.js';
import { randomInputs } from './helpers/random-inputs.js';

const load = loadNativeAddon();
const nativeOrUndefined = getNativeKernels();
const skip = nativeOrUndefined && load.ok ? false : `native addon not built (${load.ok ? '' : load.reason})`;
const native = nativeOrUndefined as Kernels;
/** set in the child processes the last test starts */
const CHILD = 'ORPO_BF16_TEST_CHILD';
const inChild = Boolean(process.env[CHILD]);
/** the tests a child (started with one plan forced) does not repeat */
const parentOnly = skip || (inChild ? 'covered by the parent process' : false);
const addon = (load.ok ? load.addon : undefined) as NativeAddon;
const { randn } = randomInputs(16016);

/** |actual - expected| <= rtol * (|expected| + mean|expected|), the rule of native-parity.test.ts */
function assertClose(what: string, actual: Float32Array, expected: Float32Array, rtol: number): void {
  let meanAbs = 0;
  for (const e of expected) meanAbs += Math.abs(e);
  meanAbs /= Math.max(1, expected.length);
  for (let i = 0; i < expected.length; i++) {
    const tol = rtol * (Math.abs(expected[i]) + meanAbs) + 1e-30;
    if (!(Math.abs(actual[i] - expected[i]) <= tol)) {
      assert.fail(`${what}[${i}]: native ${actual[i]} vs js ${expected[i]} (|diff| ${Math.abs(actual[i] - expected[i])} > ${tol})`);
    }
  }
}

/** the paths this CPU can run */
function paths(): Array<'fma' | 'dpbf16' | 'amx'> {
  const bf16 = addon.kernelInfo().bf16;
  return ['fma', ...(bf16.dpbf16 ? ['dpbf16' as const] : []), ...(bf16.amx ? ['amx' as const] : [])];
}

/** gemm on every transpose of each shape, native against the reference, c accumulated when `accumulate(transA)` */
function compareGemms(label: string, shapes: ReadonlyArray<readonly [number, number, number]>, accumulate: (transA: boolean) => boolean): void {
  for (const [M, N, K] of shapes) {
    for (const [transA, transB] of [[false, false], [false, true], [true, false], [true, true]] as const) {
      const a = randn(M * K);
      const b = randn(K * N);
      const c0 = randn(M * N);
      const ref = c0.slice();
      const got = c0.slice();
      jsKernels.gemm(ref, a, b, M, N, K, transA, transB, accumulate(transA));
      native.gemm(got, a, b, M, N, K, transA, transB, accumulate(transA));
      assertClose(`${label} gemm ${M}x${N}x${K} tA=${transA} tB=${transB}`, got, ref, 2e-5);
    }
  }
}

/**
 * bf16 products on both backends: every transpose, odd K (a half-empty last bf16 pair), 1..4 rows, K past one block,
 * N past one block, and the matmul forward/backward pair. The same tolerance as native-parity's bf16 test: the
 * operands are rounded identically, so only the float32 summation order differs from the reference's float64 sums.
 */
function checkBf16Products(label: string, large = true): void {
  const shapes: Array<[number, number, number]> = [[1, 1, 1], [3, 65, 127], [7, 63, 65], [33, 129, 300], [97, 40, 300]];
  if (large) shapes.push([150, 1100, 601], [97, 40, 1100]);
  try {
    for (const k of [jsKernels, native]) k.setMatmulBf16(true);
    compareGemms(`${label} bf16`, shapes, () => true);
    const [N, C, OC] = [70, 65, 33];
    const inp = randn(N * C);
    const w = randn(OC * C);
    const dout = randn(N * OC);
    const fwd = [new Float32Array(N * OC), new Float32Array(N * OC)];
    jsKernels.matmulForward(fwd[0], inp, w, null, N, C, OC);
    native.matmulForward(fwd[1], inp, w, null, N, C, OC);
    assertClose(`${label} bf16 matmulForward`, fwd[1], fwd[0], 2e-5);
    const dinp = [randn(N * C), new Float32Array(0)];
    dinp[1] = dinp[0].slice();
    const dw = [randn(OC * C), new Float32Array(0)];
    dw[1] = dw[0].slice();
    jsKernels.matmulBackward(dinp[0], dw[0], null, dout, inp, w, N, C, OC, true);
    native.matmulBackward(dinp[1], dw[1], null, dout, inp, w, N, C, OC, true);
    assertClose(`${label} bf16 matmulBackward dinp`, dinp[1], dinp[0], 2e-5);
    assertClose(`${label} bf16 matmulBackward dweight`, dw[1], dw[0], 2e-5);
  } finally {
    for (const k of [jsKernels, native]) k.setMatmulBf16(false);
  }
  checkBf16WeightProducts(label);
}

/**
 * Products with a frozen bf16 weight (matmulForwardBf16 / matmulBackwardBf16) on the plan in force: against the
 * reference, and bit for bit the products of bf16 mode on the widened weight (past 4 rows; 1..4 rows read the weight
 * in place and sum in another order). Run with bf16 mode off: the weight's products are bf16 ones regardless.
 */
function checkBf16WeightProducts(label: string): void {
  for (const [N, C, OC] of [[1, 65, 97], [4, 33, 130], [7, 63, 65], [97, 129, 40], [50, 301, 130]] as const) {
    const bits = f32ToBf16(randn(OC * C));
    const w = new Bf16Buffer(bf16Carrier(bits), bits.length);
    const wide = bf16ToF32(bits);
    const inp = randn(N * C);
    const bias = randn(OC);
    const dout = randn(N * OC);
    const dinp0 = randn(N * C);
    const what = `${label} bf16 weight ${N}x${C}->${OC}`;
    const ref = { out: new Float32Array(N * OC), dinp: dinp0.slice() };
    jsKernels.matmulForwardBf16(ref.out, inp, w, bias, N, C, OC);
    jsKernels.matmulBackwardBf16(ref.dinp, dout, w, N, C, OC, true);
    const got = { out: new Float32Array(N * OC), dinp: dinp0.slice() };
    native.matmulForwardBf16(got.out, inp, w, bias, N, C, OC);
    native.matmulBackwardBf16(got.dinp, dout, w, N, C, OC, true);
    assertClose(`${what} forward`, got.out, ref.out, 2e-5);
    assertClose(`${what} backward`, got.dinp, ref.dinp, 2e-5);
    if (N <= 4) continue;
    const mode = { out: new Float32Array(N * OC), dinp: dinp0.slice() };
    try {
      native.setMatmulBf16(true);
      native.matmulForward(mode.out, inp, wide, bias, N, C, OC);
      native.matmulBackward(mode.dinp, null, null, dout, inp, wide, N, C, OC, true);
    } finally {
      native.setMatmulBf16(false);
    }
    assert.deepEqual(got, mode, `${what}: not bf16 mode's numbers on the widened weight`);
  }
}

/** float32 products on odd shapes against the reference (for block choices) */
function checkF32Products(label: string): void {
  const shapes: Array<[number, number, number]> = [[50, 130, 100], [7, 200, 75], [97, 33, 38], [150, 1100, 130]];
  compareGemms(label, shapes, (transA) => transA);
}

// first, before any test below changes the plan with configureGemm
test('child: report the plan it started with; its bf16 products agree with the reference', { skip: skip || !inChild }, (t) => {
  t.diagnostic(`kernel-info ${JSON.stringify(addon.kernelInfo())}`);
  checkBf16Products(`started with ${addon.kernelInfo().bf16.kernel}`, false);
  checkF32Products(`started with ${addon.kernelInfo().gemm.kc},${addon.kernelInfo().gemm.mc},${addon.kernelInfo().gemm.nc}`);
});

test('kernelInfo: the kernel table, detected caches, blocks that fit the micro-tile, a bf16 path and the probe rates', { skip }, () => {
  const info = addon.kernelInfo();
  assert.equal(info.isa, addon.isa());
  for (const k of ['l1d', 'l2', 'l3', 'l3Sharing'] as const) assert.ok(Number.isInteger(info.cache[k]) && info.cache[k] >= 0, k);
  assert.ok(info.cache.source.length > 0);
  if (info.cache.source !== 'none') assert.ok(info.cache.l1d > 0 && info.cache.l2 > 0, JSON.stringify(info.cache));
  const g = info.gemm;
  assert.ok(g.mr > 0 && g.nr > 0 && g.kc > 0, JSON.stringify(g));
  assert.equal(g.mc % g.mr, 0);
  assert.equal(g.nc % g.nr, 0);
  assert.ok(['cache sizes', 'fixed', 'ORPO_GEMM_BLOCKS', 'set'].includes(g.blocks), g.blocks);
  if (info.cache.source !== 'none' && !process.env.ORPO_GEMM_BLOCKS) assert.equal(g.blocks, 'cache sizes');
  assert.ok(paths().includes(info.bf16.kernel), info.bf16.kernel);
  assert.ok(info.bf16.probeGflops.f32 > 0 && info.bf16.probeGflops.fma > 0, JSON.stringify(info.bf16));
  assert.equal(info.bf16.probeGflops.dpbf16 > 0, info.bf16.dpbf16);
  assert.equal(info.bf16.probeGflops.amx > 0, info.bf16.amx);
  if (info.isa !== 'avx512') assert.equal(info.bf16.dpbf16, false, 'VDPBF16PS is only in the AVX-512 table');
  if (info.isa !== 'avx512') assert.equal(info.bf16.amx, false, 'AMX is only in the AVX-512 table');
  if (!process.env.ORPO_BF16_KERNEL) {
    // the probe's choice is the fastest path it measured
    const p = info.bf16.probeGflops;
    let want: 'fma' | 'dpbf16' | 'amx' = 'fma';
    if (info.bf16.dpbf16 && p.dpbf16 > p.fma) want = 'dpbf16';
    if (info.bf16.amx && p.amx > Math.max(p.fma, info.bf16.dpbf16 ? p.dpbf16 : 0)) want = 'amx';
    assert.equal(info.bf16.kernel, want);
    assert.equal(info.bf16.source, info.bf16.dpbf16 || info.bf16.amx ? 'probe' : 'only');
  }
});

test('each bf16 path this CPU has agrees with the TypeScript reference (forced with configureGemm)', { skip: parentOnly }, () => {
  try {
    for (const path of paths()) {
      addon.configureGemm(path, null);
      assert.equal(addon.kernelInfo().bf16.kernel, path);
      assert.equal(addon.kernelInfo().bf16.source, 'set');
      checkBf16Products(path);
    }
  } finally {
    addon.configureGemm('auto', null);
  }
});

test('the two bf16 paths differ only in float32 summation order',
  { skip: parentOnly || (load.ok && !load.addon.kernelInfo().bf16.dpbf16 ? 'this CPU has no VDPBF16PS' : false) }, () => {
  const [M, N, K] = [61, 97, 515];
  const a = randn(M * K);
  const b = randn(K * N);
  const out: Record<string, Float32Array> = {};
  try {
    native.setMatmulBf16(true);
    for (const path of ['fma', 'dpbf16'] as const) {
      addon.configureGemm(path, null);
      out[path] = new Float32Array(M * N);
      native.gemm(out[path], a, b, M, N, K, false, true, false);
    }
  } finally {
    native.setMatmulBf16(false);
    addon.configureGemm('auto', null);
  }
  // about sqrt(K) float32 roundings of terms of size ~1 apart: far below one bf16 rounding of an operand (2^-9)
  let worst = 0;
  for (let i = 0; i < M * N; i++) worst = Math.max(worst, Math.abs(out.fma[i] - out.dpbf16[i]));
  assert.ok(worst < 1e-4, `fma and dpbf16 paths differ by ${worst}`);
  assert.ok(worst > 0 || M * N === 0, 'no difference at all: is one path running twice?');
});

test('cache blocks: fixed, derived and small explicit blocks all compute the same products', { skip: parentOnly }, () => {
  const derived = addon.kernelInfo().gemm;
  try {
    for (const blocks of ['fixed', '37,24,64', 'derived']) {
      addon.configureGemm(null, blocks);
      const g = addon.kernelInfo().gemm;
      if (blocks === '37,24,64') {
        assert.equal(g.kc, 37);
        assert.equal(g.mc, Math.floor(24 / g.mr) * g.mr);
        assert.equal(g.nc, Math.floor(64 / g.nr) * g.nr);
        assert.equal(g.blocks, 'set');
      }
      checkF32Products(`blocks ${blocks}`);
      for (const path of paths()) {
        addon.configureGemm(path, null);
        checkBf16Products(`blocks ${blocks} ${path}`, false);
      }
      addon.configureGemm('auto', null);
    }
  } finally {
    addon.configureGemm('auto', process.env.ORPO_GEMM_BLOCKS ?? 'derived');
  }
  const back = addon.kernelInfo().gemm;
  assert.deepEqual([back.kc, back.mc, back.nc], [derived.kc, derived.mc, derived.nc]);
});

test('configureGemm refuses what it cannot run and changes nothing then', { skip: parentOnly }, () => {
  const before = addon.kernelInfo();
  for (const [kernel, blocks] of [['sometimes', null], [null, '0,96,1024'], [null, '512,96'], [null, '512,96,1024x'],
    [null, '99999,96,1024'], ['fma', 'nonsense']] as const) {
    assert.throws(() => addon.configureGemm(kernel as 'fma', blocks), /configureGemm/, `${kernel} ${blocks}`);
  }
  if (!before.bf16.dpbf16) assert.throws(() => addon.configureGemm('dpbf16', null), /AVX512_BF16/);
  if (!before.bf16.amx) assert.throws(() => addon.configureGemm('amx', null), /AMX/);
  assert.throws(() => (addon.configureGemm as (a: unknown, b: unknown) => void)(3, null), /configureGemm/);
  const after = addon.kernelInfo();
  assert.deepEqual([after.gemm, after.bf16.kernel], [before.gemm, before.bf16.kernel]);
});

test('bf16SlowerNote: said where the best bf16 path is slower than float32, not where it is as fast or faster', () => {
  const info = (f32: number, fma: number, dpbf16: number, kernel: 'fma' | 'dpbf16', source = 'probe'): NativeKernelInfo => ({
    isa: 'avx512', cache: { l1d: 49152, l2: 2 << 20, l3: 0, l3Sharing: 0, source: 'test' },
    gemm: { mr: 12, nr: 32, kc: 1024, mc: 96, nc: 512, blocks: 'cache sizes' },
    bf16: { kernel, source, dpbf16: dpbf16 > 0, amx: false, probeGflops: { f32, fma, dpbf16, amx: 0 } },
  });
  assert.equal(bf16SlowerNote(info(190, 185, 290, 'dpbf16')), null); // Zen 5: VDPBF16PS 1.5x float32
  assert.equal(bf16SlowerNote(info(190, 187, 0, 'fma', 'only')), null); // within the probe's noise
  const spr = bf16SlowerNote(info(200, 192, 140, 'fma')); // Sapphire Rapids: VDPBF16PS slower, rounding costs 4%
  assert.match(spr ?? '', /4% slower than float32 .*bf16-rounded operands through float32 FMA, chosen by probe: 192 against 200 GFLOP\/s/);
  assert.match(spr ?? '', /keep bf16 numbers/);
  // the path in use counts: forced onto the slower one, the note says so even though the other is faster
  assert.match(bf16SlowerNote(info(190, 180, 290, 'fma', 'ORPO_BF16_KERNEL')) ?? '', /5% slower .*chosen by ORPO_BF16_KERNEL/);
  assert.equal(bf16SlowerNote(info(0, 0, 0, 'fma')), null); // no probe numbers: nothing to say
});

// ------------------------------------------------------------------------------------------------ start-up choices

/** reruns this file with `env` added; the child runs every test above under it */
function runChild(env: Record<string, string>): { info: NativeKernelInfo; stderr: string } {
  const self = fileURLToPath(import.meta.url);
  // without NODE_TEST_CONTEXT: under a test runner it makes the child report in the runner's binary protocol
  const { NODE_TEST_CONTEXT: _runner, ...parent } = process.env;
  const child = spawnSync(process.execPath, ['--test', self], {
    env: { ...parent, ...env, [CHILD]: '1' }, encoding: 'utf8', timeout: 180_000,
  });
  assert.equal(child.status, 0, `${JSON.stringify(env)} run failed:\n${child.stdout}\n${child.stderr}`);
  const line = child.stdout.split('\n').find((l) => l.includes('kernel-info '));
  assert.ok(line, `the child printed no kernel info:\n${child.stdout}`);
  // the test runner passes the test file's stderr on as '#' lines of its stdout: a start-up warning can be in either
  return {
    info: JSON.parse(line.slice(line.indexOf('kernel-info ') + 12)) as NativeKernelInfo,
    stderr: child.stderr + child.stdout,
  };
}

test('ORPO_BF16_KERNEL, ORPO_GEMM_BLOCKS and ORPO_CACHE_SIZES choose the plan a process starts with',
  { skip: parentOnly, timeout: 600_000 }, () => {
    const can = paths();
    for (const path of can) {
      const { info } = runChild({ ORPO_BF16_KERNEL: path });
      assert.equal(info.bf16.kernel, path);
      assert.equal(info.bf16.source, 'ORPO_BF16_KERNEL');
    }
    if (!can.includes('dpbf16')) {
      const { info, stderr } = runChild({ ORPO_BF16_KERNEL: 'dpbf16' });
      assert.equal(info.bf16.kernel, can.includes('amx') ? info.bf16.kernel : 'fma');
      assert.match(stderr, /ignoring ORPO_BF16_KERNEL=dpbf16 \(this CPU or kernel table has no VDPBF16PS\)/);
    }
    if (!can.includes('amx')) {
      const { info, stderr } = runChild({ ORPO_BF16_KERNEL: 'amx' });
      assert.notEqual(info.bf16.kernel, 'amx');
      assert.match(stderr, /ignoring ORPO_BF16_KERNEL=amx \(this CPU, kernel table or OS has no usable AMX\)/);
    }
    const fixed = runChild({ ORPO_GEMM_BLOCKS: 'fixed' }).info.gemm;
    assert.equal(fixed.blocks, 'fixed');
    // a Sapphire Rapids core's caches (48 KiB L1d, 2 MiB L2): the deeper K block the derivation gives it
    const spr = runChild({ ORPO_CACHE_SIZES: '48K,2M,105M' }).info;
    assert.deepEqual(spr.cache, { l1d: 48 << 10, l2: 2 << 20, l3: 105 << 20, l3Sharing: 0, source: 'ORPO_CACHE_SIZES' });
    assert.equal(spr.gemm.blocks, 'cache sizes');
    const kc = Math.min(1024, Math.max(256, Math.floor((2 << 20) / 4 / (4 * (spr.gemm.mc + spr.gemm.nr)) / 16) * 16));
    assert.equal(spr.gemm.kc, kc);
  });
