// The fused, chunked loss head against the unfused one: log-probs, dhidden and dweight on odd sizes, chunks of
// one row, chunks that divide the scored rows exactly, leave a remainder, or exceed them; rows without targets;
// a frozen head (dweight null); float64 exactly and float32 on every backend; and the whole ORPO step of a model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jsKernels } from '../src/backend/js/kernels.js';
import { availableBackends, getKernels } from '../src/backend/index.js';
import type { Kernels } from '../src/backend/kernels.js';
import { UnfusedLogprobHead, type TokenLogprobHead } from '../src/loss/logprob-head.js';
import { FusedLogprobHead } from '../src/loss/fused-head.js';
import { createModel } from '../src/model/create.js';
import { collatePairs, type TokenPair } from '../src/data/collate.js';
import { orpoStep } from '../src/loss/orpo.js';
import { Rng } from '../src/tensor/rng.js';

const N = 23;
const C = 7;
const V = 53;

function problem(precision: 'float32' | 'float64') {
  const rng = new Rng(3);
  const make = (n: number, s: number) => {
    const x = precision === 'float64' ? new Float64Array(n) : new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = s * rng.normal();
    return x as unknown as Float32Array;
  };
  // 17 scored rows of 23: none at a few scattered rows and at the end, as padding and last tokens have; row 9
  // twice with different targets, as a shared prompt's last token predicts both responses' first tokens
  const rowList: number[] = [];
  for (let n = 0; n < N; n++) if (![0, 5, 6, 13, 21, 22].includes(n)) rowList.push(n);
  rowList.splice(4, 0, 9);
  const rows = Int32Array.from(rowList);
  const targets = Int32Array.from(rowList, () => rng.int(V));
  return { hidden: make(N * C, 1), weight: make(V * C, 0.7), rows, targets, dlogp: make(M, 1), alloc: (n: number) => make(n, 0) };
}

/** scored (row, target) pairs */
const M = 18;

function run(head: TokenLogprobHead, p: ReturnType<typeof problem>, withWeightGrad: boolean) {
  const logp = Float64Array.from(head.forward(p.hidden, p.weight, p.rows, p.targets, C, V));
  const dhidden = p.alloc(N * C);
  dhidden.fill(0.25); // backward accumulates: start from non-zero
  const dweight = withWeightGrad ? p.alloc(V * C) : null;
  dweight?.fill(-0.5);
  head.backward(dhidden, dweight, p.dlogp);
  return { logp, dhidden: Float64Array.from(dhidden), dweight: dweight ? Float64Array.from(dweight) : null };
}

function assertClose(got: Float64Array, want: Float64Array, tol: number, what: string): void {
  let scale = 0;
  for (const w of want) scale = Math.max(scale, Math.abs(w));
  for (let i = 0; i < want.length; i++) {
    assert.ok(Math.abs(got[i]! - want[i]!) <= tol * scale, `${what}[${i}]: ${got[i]} vs ${want[i]}`);
  }
}

function backends(): Kernels[] {
  return [jsKernels, ...(availableBackends().includes('native') ? [getKernels()] : [])];
}

for (const chunkRows of [1, 4, 17, 5, 1000]) {
  test(`fused head, ${chunkRows} rows per chunk (17 scored rows): float64 equals the unfused head`, () => {
    const p = problem('float64');
    for (const withWeightGrad of [true, false]) {
      const want = run(new UnfusedLogprobHead(jsKernels, 'float64'), p, withWeightGrad);
      const got = run(new FusedLogprobHead(jsKernels, { chunkRows, precision: 'float64' }), p, withWeightGrad);
      // every row's arithmetic is the same: log-probs and dhidden are bit-identical
      assert.deepEqual(got.logp, want.logp);
      assert.deepEqual(got.dhidden, want.dhidden);
      assert.equal(got.logp.length, M);
      assert.ok(got.logp.every((x) => x < 0));
      if (withWeightGrad) assertClose(got.dweight!, want.dweight!, 1e-14, 'dweight');
    }
    // frozen head: d logp / d hidden precomputed in forward, scaled by dlogp in backward
    const want = run(new UnfusedLogprobHead(jsKernels, 'float64'), p, false);
    const frozen = new FusedLogprobHead(jsKernels, { chunkRows, precision: 'float64', frozenWeight: true });
    const got = run(frozen, p, false);
    assert.deepEqual(got.logp, want.logp);
    assertClose(got.dhidden, want.dhidden, 1e-14, 'dhidden (frozen head)');
    assert.throws(() => run(frozen, p, true), /frozenWeight/);
  });
}

for (const k of backends()) {
  test(`fused head on the ${k.name} backend (float32) matches the unfused head`, () => {
    const p = problem('float32');
    const want = run(new UnfusedLogprobHead(k), p, true);
    for (const chunkRows of [3, 8, 256]) {
      const got = run(new FusedLogprobHead(k, { chunkRows }), p, true);
      assertClose(got.logp, want.logp, 1e-6, 'logp');
      assertClose(got.dhidden, want.dhidden, 1e-6, 'dhidden');
      assertClose(got.dweight!, want.dweight!, 1e-6, 'dweight');
      const frozen = run(new FusedLogprobHead(k, { chunkRows, frozenWeight: true }), p, false);
      assertClose(frozen.dhidden, run(new UnfusedLogprobHead(k), p, false).dhidden, 1e-6, 'dhidden (frozen head)');
    }
  });
}

test('ORPO step of a whole model: the fused head gives the unfused gradients of every parameter; holds fewer bytes', async () => {
  const raw = {
    model_type: 'llama', vocab_size: 97, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, tie_word_embeddings: true, initializer_range: 0.2,
  };
  const rng = new Rng(8);
  const seq = (n: number) => Array.from({ length: n }, () => 1 + rng.int(96));
  const pairs: TokenPair[] = Array.from({ length: 3 }, () => ({ prompt: seq(3 + rng.int(5)), chosen: seq(2 + rng.int(6)), rejected: seq(2 + rng.int(6)) }));
  const batch = collatePairs(pairs, 0);
  const grads = async (head: TokenLogprobHead) => {
    const model = createModel(raw, { seed: 2, kernels: jsKernels, precision: 'float64' });
    model.zeroGrad();
    const r = await orpoStep(model, batch, { beta: 0.2, sftScope: 'full', head });
    return { loss: r.loss, g: Float64Array.from(model.grads) };
  };
  const unfused = new UnfusedLogprobHead(jsKernels, 'float64');
  const fused = new FusedLogprobHead(jsKernels, { chunkRows: 6, precision: 'float64' });
  const want = await grads(unfused);
  const got = await grads(fused);
  assert.equal(got.loss, want.loss);
  assertClose(got.g, want.g, 1e-13, 'grad');
  assert.ok(fused.bytes() < unfused.bytes() / 2, `${fused.bytes()} vs ${unfused.bytes()}`);
});

test('fused head refuses a chunk size that is not a positive integer, and backward before forward', () => {
  assert.throws(() => new FusedLogprobHead(jsKernels, { chunkRows: 0 }), /chunkRows/);
  assert.throws(() => new FusedLogprobHead(jsKernels).backward(new Float32Array(1), null, new Float64Array(1)), /before forward/);
});
