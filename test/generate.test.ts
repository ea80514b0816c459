// Sampling and the generation loop against references: argmax for greedy, the softmax for sampled
// frequencies, hand-picked logits for top-k / top-p, and a direct logits computation for fullForwardLogits.
import { headParamName } from '../src/model/layout.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { argmax, sampleNext } from '../src/generate/sample.js';
import { fullForwardLogits, generateTokens } from '../src/generate/generate.js';
import { Rng } from '../src/tensor/rng.js';
import { createModel } from '../src/model/create.js';
import { demoModelConfig } from '../src/train/demo-task.js';

const logits = Float32Array.from([1.0, 3.0, 2.0, 0.5]);

function frequencies(opts: { temperature: number; topK: number; topP: number }, draws: number, seed = 7): number[] {
  const rng = new Rng(seed);
  const counts = [0, 0, 0, 0];
  for (let i = 0; i < draws; i++) counts[sampleNext(logits, opts, rng)]! += 1;
  return counts.map((c) => c / draws);
}

function softmax(xs: number[], t: number): number[] {
  const m = Math.max(...xs);
  const e = xs.map((x) => Math.exp((x - m) / t));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

test('greedy (temperature 0) is argmax, whatever top-k/top-p say', () => {
  assert.equal(argmax(logits), 1);
  assert.equal(sampleNext(logits, { temperature: 0, topK: 3, topP: 0.5 }, new Rng(1)), 1);
});

test('sampled frequencies follow softmax(logits / T)', () => {
  for (const t of [1, 0.5, 2]) {
    const got = frequencies({ temperature: t, topK: 0, topP: 1 }, 40000);
    const want = softmax([...logits], t);
    got.forEach((g, i) => assert.ok(Math.abs(g - want[i]!) < 0.01, `T=${t} token ${i}: ${g} vs ${want[i]}`));
  }
});

test('top-k keeps the k most likely tokens, renormalised', () => {
  const got = frequencies({ temperature: 1, topK: 2, topP: 1 }, 40000);
  const want = softmax([3, 2], 1);
  assert.equal(got[0], 0);
  assert.equal(got[3], 0);
  assert.ok(Math.abs(got[1]! - want[0]!) < 0.01 && Math.abs(got[2]! - want[1]!) < 0.01, String(got));
  // top-k 1 is greedy at any temperature
  assert.deepEqual(frequencies({ temperature: 5, topK: 1, topP: 1 }, 200), [0, 1, 0, 0]);
});

test('top-p keeps the smallest most-likely set reaching p', () => {
  const p = softmax([...logits], 1); // token 1 ≈ 0.61, token 2 ≈ 0.22, token 0 ≈ 0.08, token 3 ≈ 0.05
  // p = 0.5: token 1 alone already reaches it
  assert.deepEqual(frequencies({ temperature: 1, topK: 0, topP: 0.5 }, 500), [0, 1, 0, 0]);
  // p = 0.7: tokens 1 and 2 (0.61 < 0.7 <= 0.83), renormalised
  const got = frequencies({ temperature: 1, topK: 0, topP: 0.7 }, 40000);
  const z = p[1]! + p[2]!;
  assert.equal(got[0], 0);
  assert.equal(got[3], 0);
  assert.ok(Math.abs(got[1]! - p[1]! / z) < 0.01, String(got));
});

test('the same seed gives the same tokens; another seed, other tokens', () => {
  const a = frequencies({ temperature: 1, topK: 0, topP: 1 }, 50, 3);
  const b = frequencies({ temperature: 1, topK: 0, topP: 1 }, 50, 3);
  assert.deepEqual(a, b);
  const seq = (seed: number): number[] => {
    const rng = new Rng(seed);
    return Array.from({ length: 40 }, () => sampleNext(logits, { temperature: 1, topK: 0, topP: 1 }, rng));
  };
  assert.notDeepEqual(seq(1), seq(2));
});

test('generation stops at EOS (kept) or after max_new_tokens', () => {
  // a fake model: the next token is the context length mod 5
  const next = (tokens: readonly number[]): Float32Array => {
    const l = new Float32Array(5);
    l[tokens.length % 5] = 1;
    return l;
  };
  const base = { temperature: 0, topK: 0, topP: 1, seed: 0 };
  assert.deepEqual(generateTokens(next, [9, 9], { ...base, maxNewTokens: 10, stopTokenIds: [4] }), { tokens: [2, 3, 4], stopReason: 'eos' });
  assert.deepEqual(generateTokens(next, [9, 9], { ...base, maxNewTokens: 2, stopTokenIds: [4] }), { tokens: [2, 3], stopReason: 'max_new_tokens' });
  assert.deepEqual(generateTokens(next, [9, 9], { ...base, maxNewTokens: 9, stopTokenIds: [] }, 4), { tokens: [2, 3], stopReason: 'context_full' });
  assert.throws(() => generateTokens(next, [], { ...base, maxNewTokens: 2, stopTokenIds: [] }), /prompt is empty/);
});

test('fullForwardLogits = last hidden row times the output projection', () => {
  const model = createModel(demoModelConfig({ hiddenSize: 16, layers: 1, heads: 2, intermediateSize: 32 }), { seed: 3 });
  const tokens = [1, 4, 5, 13, 6];
  const got = fullForwardLogits(model)(tokens);
  const { hidden } = model.forward(Int32Array.from(tokens), 1, tokens.length);
  const C = model.config.hiddenSize;
  const head = model.param(headParamName(model.config));
  for (let v = 0; v < model.config.vocabSize; v++) {
    let s = 0;
    for (let c = 0; c < C; c++) s += hidden[(tokens.length - 1) * C + c]! * head[v * C + c]!;
    assert.ok(Math.abs(got[v]! - s) < 1e-5, `logit ${v}: ${got[v]} vs ${s}`);
  }
});

test('KV-cached generation (model Generator) gives the same logits and tokens as full forwards', async () => {
  const { Generator } = await import('../src/model/generator.js');
  const model = createModel(demoModelConfig({ hiddenSize: 32, layers: 2, heads: 2, intermediateSize: 64 }), { seed: 8 });
  const generator = new Generator(model);
  const full = fullForwardLogits(model);
  const prompt = [1, 4, 5, 13, 6];
  for (const temperature of [0, 1]) {
    const opts = { temperature, topK: 0, topP: 1, seed: 5, maxNewTokens: 12, stopTokenIds: [] };
    const cached = generateTokens((t) => {
      const a = generator.nextLogits(t);
      const b = full(t);
      for (let v = 0; v < a.length; v++) assert.ok(Math.abs(a[v]! - b[v]!) < 1e-4, `logit ${v} at length ${t.length}`);
      return a;
    }, prompt, opts);
    assert.deepEqual(cached, generateTokens(full, prompt, opts));
  }
});
