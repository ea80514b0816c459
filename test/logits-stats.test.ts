// The logit statistics the metrics report (TRL's `logits/chosen|rejected`, SFT's `mean_token_accuracy`): the
// logitsStats kernel against its definition written as a plain float64 loop, and both loss heads, which fill the
// statistics while their logits exist, against the statistics of the full (M,V) logits. The heads' cases: chunks
// of one row, chunks that divide the scored rows, leave a remainder or exceed them; a frozen fused head (which
// writes the logits' gradient over them right after); rows whose maximum is tied between two vocabulary entries.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jsKernels, referenceKernels } from '../src/backend/js/kernels.js';
import { availableBackends, getNativeKernels } from '../src/backend/index.js';
import type { FloatArray, Kernels } from '../src/backend/kernels.js';
import { UnfusedLogprobHead, type LogitStats, type TokenLogprobHead } from '../src/loss/logprob-head.js';
import { FusedLogprobHead } from '../src/loss/fused-head.js';
import { Rng } from '../src/tensor/rng.js';

/** the definition: mean over the vocabulary summed in float64, the lowest index holding the row's maximum */
function definition(logits: ArrayLike<number>, N: number, V: number): { mean: Float64Array; argmax: Int32Array } {
  const mean = new Float64Array(N);
  const argmax = new Int32Array(N);
  for (let n = 0; n < N; n++) {
    let sum = 0;
    let max = -Infinity;
    for (let j = 0; j < V; j++) {
      sum += logits[n * V + j]!;
      max = Math.max(max, logits[n * V + j]!);
    }
    mean[n] = sum / V;
    let first = 0;
    while (logits[n * V + first] !== max) first++;
    argmax[n] = first;
  }
  return { mean, argmax };
}

/** random rows, every third with its maximum written at two or three places (ties the kernels must resolve) */
function logitsWithTies(rng: Rng, N: number, V: number, precision: 'float32' | 'float64'): FloatArray {
  const x = precision === 'float64' ? new Float64Array(N * V) : new Float32Array(N * V);
  for (let i = 0; i < x.length; i++) x[i] = 4 * rng.normal();
  for (let n = 0; n < N; n += 3) {
    const row = x.subarray(n * V, n * V + V);
    for (let t = 0; t < 1 + (n % 2) + 1; t++) row[rng.int(V)] = 25;
  }
  return x;
}

function nativeKernels(): Kernels | undefined {
  return availableBackends().includes('native') ? getNativeKernels() : undefined;
}

test('logitsStats (js, float64 and float32 buffers) is its definition exactly: float64 mean, first maximum', () => {
  const rng = new Rng(5);
  for (const precision of ['float64', 'float32'] as const) {
    for (const [N, V] of [[1, 1], [4, 2], [9, 17], [12, 100], [3, 4099]] as const) {
      const logits = logitsWithTies(rng, N, V, precision);
      const want = definition(logits, N, V);
      const mean = precision === 'float64' ? new Float64Array(N) : new Float32Array(N);
      const argmax = new Int32Array(N).fill(-1);
      referenceKernels.logitsStats(mean, argmax, logits, N, V);
      assert.deepEqual(argmax, want.argmax, `${precision} ${N}x${V} argmax`);
      // same sum in the same order: the only rounding is the store into the output's precision
      const stored = precision === 'float64' ? want.mean : Float32Array.from(want.mean);
      assert.deepEqual(mean, stored, `${precision} ${N}x${V} mean`);
    }
  }
  assert.throws(() => jsKernels.logitsStats(new Float32Array(1), new Int32Array(1), new Float32Array(0), 1, 0), /V must be at least 1/);
  jsKernels.logitsStats(new Float32Array(0), new Int32Array(0), new Float32Array(0), 0, 0); // no rows: nothing to do
});

test('logitsStats (native) matches its definition: first maximum exactly, mean to float32 rounding', { skip: nativeKernels() ? false : 'native addon not built' }, () => {
  const k = nativeKernels()!;
  const rng = new Rng(6);
  for (const [N, V] of [[1, 1], [5, 3], [9, 17], [12, 100], [7, 1031], [3, 50_257]] as const) {
    const logits = logitsWithTies(rng, N, V, 'float32') as Float32Array;
    const want = definition(logits, N, V);
    const mean = new Float32Array(N);
    const argmax = new Int32Array(N).fill(-1);
    k.logitsStats(mean, argmax, logits, N, V);
    assert.deepEqual(argmax, want.argmax, `${N}x${V} argmax`);
    for (let n = 0; n < N; n++) {
      // float64 lanes summed in another order: a float32 rounding of the exact mean, plus float64 noise
      const tol = 2 ** -23 * Math.abs(want.mean[n]!) + 1e-12 * 4;
      assert.ok(Math.abs(mean[n]! - want.mean[n]!) <= tol, `${N}x${V} mean[${n}]: ${mean[n]} vs ${want.mean[n]}`);
    }
  }
});

// ------------------------------------------------------------------------------------------------ loss heads

const N = 23;
const C = 7;
const V = 53;
const TIED = [11, 30] as const;

/**
 * 18 scored (row, target) pairs out of 23 hidden rows, row 9 twice. Vocabulary entries 11 and 30 share one weight
 * row along a direction every hidden row leans towards, so most rows' largest logit is tied between them
 * (the same products in the same order on every backend: bit-identical) and the argmax must say 11.
 */
function problem(precision: 'float32' | 'float64') {
  const rng = new Rng(4);
  const make = (n: number) => (precision === 'float64' ? new Float64Array(n) : new Float32Array(n)) as unknown as Float32Array;
  const hidden = make(N * C);
  const weight = make(V * C);
  for (let i = 0; i < hidden.length; i++) hidden[i] = 1 + 0.5 * rng.normal();
  for (let i = 0; i < weight.length; i++) weight[i] = 0.5 * rng.normal();
  for (const v of TIED) for (let c = 0; c < C; c++) weight[v * C + c] = 0.9;
  const rowList: number[] = [];
  for (let n = 0; n < N; n++) if (![0, 5, 6, 13, 21, 22].includes(n)) rowList.push(n);
  rowList.splice(4, 0, 9);
  const rows = Int32Array.from(rowList);
  const targets = Int32Array.from(rowList, () => rng.int(V));
  targets[2] = -1; // a row without a target still has logits, and so statistics
  return { hidden, weight, rows, targets, M: rows.length, make };
}

/** the statistics of the full (M,V) logits, the backend's own lm_head product, by the definition */
function fullLogitStats(k: Kernels, p: ReturnType<typeof problem>) {
  const packed = p.make(p.M * C);
  for (let i = 0; i < p.M; i++) packed.set(p.hidden.subarray(p.rows[i]! * C, p.rows[i]! * C + C), i * C);
  const logits = p.make(p.M * V);
  k.matmulForward(logits, packed, p.weight, null, p.M, C, V);
  return definition(logits, p.M, V);
}

function headCases(k: Kernels, precision: 'float32' | 'float64'): Array<[string, () => TokenLogprobHead]> {
  const cases: Array<[string, () => TokenLogprobHead]> = [['unfused', () => new UnfusedLogprobHead(k, precision)]];
  for (const chunkRows of [1, 4, 5, 18, 1000]) {
    for (const frozenWeight of [false, true]) {
      cases.push([`fused, ${chunkRows} rows per chunk${frozenWeight ? ', frozen' : ''}`,
        () => new FusedLogprobHead(k, { chunkRows, precision, frozenWeight })]);
    }
  }
  return cases;
}

const configs: Array<[Kernels, 'float32' | 'float64']> = [[jsKernels, 'float64'], [jsKernels, 'float32']];
const nk = nativeKernels();
if (nk) configs.push([nk, 'float32']);

for (const [k, precision] of configs) {
  test(`loss heads (${k.name}, ${precision}) fill each scored row's logit mean and argmax as the full logits give them`, () => {
    const p = problem(precision);
    const want = fullLogitStats(k, p);
    const tiedRows = want.argmax.filter((a) => a === TIED[0]).length;
    assert.ok(tiedRows >= p.M / 2, `the problem ties most rows' maximum (${tiedRows} of ${p.M})`);
    assert.ok(!want.argmax.includes(TIED[1]), 'the first of the tied entries wins');
    for (const [name, make] of headCases(k, precision)) {
      const head = make();
      const plain = Float64Array.from(head.forward(p.hidden, p.weight, p.rows, p.targets, C, V));
      // larger than needed and pre-filled: only the first M entries are the head's to write
      const stats: LogitStats = { mean: new Float32Array(p.M + 2).fill(7), argmax: new Int32Array(p.M + 2).fill(-9) };
      const logp = Float64Array.from(head.forward(p.hidden, p.weight, p.rows, p.targets, C, V, stats));
      assert.deepEqual(logp, plain, `${name}: asking for statistics leaves the log-probs alone`);
      assert.deepEqual(Array.from(stats.argmax.subarray(0, p.M)), Array.from(want.argmax), `${name}: argmax`);
      assert.deepEqual(Array.from(stats.mean.subarray(p.M)), [7, 7], `${name}: nothing written past M`);
      assert.deepEqual(Array.from(stats.argmax.subarray(p.M)), [-9, -9], `${name}: nothing written past M`);
      for (let i = 0; i < p.M; i++) {
        // a chunk's product may round differently from the full one natively; the JS products are the same sums
        const tol = (k.name === 'js' ? 0 : 1e-5) * 4 + 2 ** -23 * Math.abs(want.mean[i]!);
        assert.ok(Math.abs(stats.mean[i]! - want.mean[i]!) <= tol, `${name}: mean[${i}] ${stats.mean[i]} vs ${want.mean[i]}`);
      }
      // the head still has what backward needs (a frozen head's saved row gradients were made after the stats)
      const dhidden = p.make(N * C);
      head.backward(dhidden, null, new Float64Array(p.M).fill(1));
      assert.ok(dhidden.some((x) => x !== 0), `${name}: backward after forward with statistics`);
    }
  });
}

test('loss heads refuse statistics arrays shorter than the scored rows', () => {
  const p = problem('float32');
  const short: LogitStats = { mean: new Float32Array(p.M), argmax: new Int32Array(p.M - 1) };
  for (const head of [new UnfusedLogprobHead(jsKernels), new FusedLogprobHead(jsKernels, { chunkRows: 4 })]) {
    assert.throws(() => head.forward(p.hidden, p.weight, p.rows, p.targets, C, V, short), /need 18/);
  }
});

test('unfused head with stats over a vocabulary of many cache blocks: the same log-probs and stats as whole-block kernels', () => {
  // V = 40000: 6 rows per 1 MiB block, so 20 scored rows take 4 blocks, the last one short
  const V = 40000;
  const C = 8;
  const M = 20;
  const rng = new Rng(17);
  const weight = Float32Array.from({ length: V * C }, () => rng.normal());
  const hidden = Float32Array.from({ length: M * C }, () => rng.normal());
  const rows = Int32Array.from({ length: M }, (_, i) => i);
  const targets = Int32Array.from({ length: M }, () => rng.int(V));
  const kernels: Kernels[] = [jsKernels, ...(nativeKernels() ? [nativeKernels()!] : [])];
  for (const k of kernels) {
    const logits = new Float32Array(M * V);
    k.matmulForward(logits, hidden, weight, null, M, C, V);
    const want = { logp: new Float32Array(M), lse: new Float32Array(M), mean: new Float32Array(M), argmax: new Int32Array(M) };
    k.logprobForward(want.logp, want.lse, logits, targets, M, V);
    k.logitsStats(want.mean, want.argmax, logits, M, V);
    const stats: LogitStats = { mean: new Float32Array(M), argmax: new Int32Array(M) };
    const lp = new UnfusedLogprobHead(k).forward(hidden, weight, rows, targets, C, V, stats);
    assert.deepEqual(Array.from(lp), Array.from(want.logp), `${k.name}: log-probs`);
    assert.deepEqual(Array.from(stats.mean), Array.from(want.mean), `${k.name}: means`);
    assert.deepEqual(Array.from(stats.argmax), Array.from(want.argmax), `${k.name}: argmax`);
  }
});
