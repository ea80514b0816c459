// The methods through the trainer: gradient accumulation gives the larger batch's update for every method; DPO's
// precomputed reference log-probs give the same run as the reference on the fly (and survive a resume); under LoRA
// DPO's reference is the policy with its adapters switched off, no second copy of the weights; every method's loss
// falls; SFT trains on the chosen rows only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createModel } from '../src/model/create.js';
import type { CausalLM } from '../src/model/types.js';
import { train, type TrainerState } from '../src/train/trainer.js';
import { defaultsOf } from '../src/train/options.js';
import { objectiveFromConfig, TRAIN_OPTIONS, type TrainConfig } from '../src/train/config.js';
import { arithmeticTask, demoEncode, demoModelConfig } from '../src/train/demo-task.js';
import type { TokenPair } from '../src/data/collate.js';
import { collatePairs } from '../src/data/collate.js';
import { modelReference } from '../src/loss/reference.js';
import { attachLora } from '../src/lora/adapters.js';
import { objectiveStep } from '../src/loss/preference.js';
import { createObjective } from '../src/loss/objectives/index.js';
import { Rng } from '../src/tensor/rng.js';
import type { Method } from '../src/loss/objective.js';

const tinyConfig = demoModelConfig({ hiddenSize: 16, layers: 1, heads: 2, intermediateSize: 32 });

function tinyPairs(n: number): TokenPair[] {
  const pairs = arithmeticTask(5, n, 1).train.map((p) => ({
    prompt: [1, ...demoEncode(p.prompt)], chosen: [...demoEncode(p.chosen), 2], rejected: [...demoEncode(p.rejected), 2],
  }));
  // lengths that differ, so per-micro-batch means would weight tokens differently
  pairs[1] = { ...pairs[1]!, prompt: pairs[1]!.prompt.slice(0, 3), chosen: [5, 6, 7, 8, 9, 2] };
  return pairs;
}

function config(over: Partial<TrainConfig>): TrainConfig {
  return { ...defaultsOf(TRAIN_OPTIONS), model: 'm', dataset: 'd', output_dir: 'o', learning_rate: 1e-2, logging_steps: 1, ...over };
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

const METHODS: Method[] = ['orpo', 'sft', 'dpo', 'simpo'];

test('gradient accumulation 2 x 2 gives the update of one batch of 4, for every method', async () => {
  const pairs = tinyPairs(8);
  for (const method of METHODS) {
    const run = async (bs: number, accum: number): Promise<{ model: CausalLM; loss: number }> => {
      const model = createModel(tinyConfig, { seed: 11 });
      const c = config({ method, per_device_train_batch_size: bs, gradient_accumulation_steps: accum, max_steps: 2, max_grad_norm: 0, learning_rate: 1e-3 });
      const reference = method === 'dpo' ? modelReference(createModel(tinyConfig, { seed: 11 }), { description: 'initial' }) : null;
      const r = await train(model, { train: pairs, eval: null, padTokenId: 0 }, c, {}, null, { objective: objectiveFromConfig(c), reference });
      return { model, loss: r.lastTrain!['loss']! };
    };
    const big = await run(4, 1);
    const acc = await run(2, 2);
    let gmax = 0;
    for (const g of big.model.grads) gmax = Math.max(gmax, Math.abs(g));
    assert.ok(gmax > 0, `${method}: a gradient`);
    assert.ok(maxAbsDiff(big.model.grads, acc.model.grads) <= 1e-5 * gmax, `${method}: accumulated gradient`);
    assert.ok(maxAbsDiff(big.model.params, acc.model.params) < 1e-6, `${method}: parameters after two steps`);
    assert.ok(Math.abs(acc.loss - big.loss) <= 1e-5 * Math.abs(big.loss) + 1e-7, `${method}: logged loss ${acc.loss} vs ${big.loss}`);
  }
});

test('every method lowers its own loss on what it trains on; the preference methods widen the chosen-rejected margin', async () => {
  const trainPairs = arithmeticTask(7, 32, 1).train.map((p) => ({
    prompt: [1, ...demoEncode(p.prompt)], chosen: [...demoEncode(p.chosen), 2], rejected: [...demoEncode(p.rejected), 2],
  }));
  // a tiny random model learns nothing that generalises in 30 steps: measure on the training pairs themselves
  const evalPairs = trainPairs;
  for (const method of METHODS) {
    const model = createModel(tinyConfig, { seed: 3 });
    const c = config({ method, max_steps: 30, per_device_train_batch_size: 8, learning_rate: 3e-3, logging_steps: 30 });
    const reference = method === 'dpo' ? modelReference(createModel(tinyConfig, { seed: 3 }), { description: 'initial' }) : null;
    const r = await train(model, { train: trainPairs, eval: evalPairs, padTokenId: 0 }, c, {}, null, { objective: objectiveFromConfig(c), reference });
    const first = r.firstEval!;
    const last = r.lastEval!;
    assert.ok(last['eval_loss']! < first['eval_loss']! - 0.01, `${method}: loss ${first['eval_loss']} -> ${last['eval_loss']}`);
    if (method !== 'sft') {
      assert.ok(last['eval_mean_logps/margin']! > first['eval_mean_logps/margin']! + 0.01, `${method}: margin ${first['eval_mean_logps/margin']} -> ${last['eval_mean_logps/margin']}`);
    }
    for (const k of ['eval_mean_logps/accuracy', 'eval_mean_logps/margin', 'eval_mean_logps/rejected']) assert.ok(k in last, `${method}: ${k}`);
  }
});

test('SFT trains on the chosen rows only: the policy runs fewer tokens than a preference method', async () => {
  const pairs = tinyPairs(8);
  const tokens: Record<string, number> = {};
  for (const method of ['sft', 'orpo'] as const) {
    const c = config({ method, max_steps: 1, per_device_train_batch_size: 8, share_prompt: false });
    const r = await train(createModel(tinyConfig, { seed: 1 }), { train: pairs, eval: null, padTokenId: 0 }, c, {}, null, { objective: objectiveFromConfig(c) });
    tokens[method] = r.forwardTokens;
  }
  const chosen = pairs.reduce((s, p) => s + p.prompt.length + p.chosen.length, 0);
  assert.equal(tokens['sft'], chosen);
  assert.equal(tokens['orpo'], chosen + pairs.reduce((s, p) => s + p.prompt.length + p.rejected.length, 0));
});

test('DPO: precomputed reference log-probs give the run the on-the-fly reference gives, and a resume keeps them', async () => {
  const pairs = tinyPairs(12);
  const base = config({ method: 'dpo', max_steps: 4, per_device_train_batch_size: 2, gradient_accumulation_steps: 2, learning_rate: 3e-3 });
  const run = async (precompute: boolean): Promise<{ losses: number[]; model: CausalLM; refTokens: number }> => {
    const c = { ...base, precompute_ref_log_probs: precompute };
    const model = createModel(tinyConfig, { seed: 5 });
    const reference = modelReference(createModel(tinyConfig, { seed: 5 }), { description: 'initial' });
    const r = await train(model, { train: pairs, eval: null, padTokenId: 0 }, c, {}, null, { objective: objectiveFromConfig(c), reference });
    return { losses: r.state.log_history.map((x) => x['loss']!), model, refTokens: r.referenceTokens };
  };
  const fly = await run(false);
  const pre = await run(true);
  assert.equal(fly.losses.length, 4);
  assert.ok(fly.losses[3]! < fly.losses[0]!, 'the loss falls');
  for (let i = 0; i < 4; i++) assert.ok(Math.abs(fly.losses[i]! - pre.losses[i]!) <= 1e-6 * Math.abs(fly.losses[i]!), `step ${i + 1}: ${fly.losses[i]} vs ${pre.losses[i]}`);
  assert.ok(maxAbsDiff(fly.model.params, pre.model.params) < 1e-6, 'same weights');
  // precomputing runs every pair through the reference once; on the fly runs it for every step's pairs
  const allTokens = pairs.reduce((s, p) => s + p.prompt.length + p.chosen.length + p.rejected.length, 0);
  assert.ok(pre.refTokens <= allTokens, `precomputed reference ran ${pre.refTokens} tokens`);

  // a checkpoint at step 2 of the same 4-step run, resumed: the reference is not run again, and the run ends where
  // the uninterrupted one did
  const c = { ...base, precompute_ref_log_probs: true, save_steps: 2 };
  let saved: { state: TrainerState; m: Float32Array; v: Float32Array; step: number; params: Float32Array } | null = null;
  const model = createModel(tinyConfig, { seed: 5 });
  const reference = modelReference(createModel(tinyConfig, { seed: 5 }), { description: 'initial' });
  await train(model, { train: pairs, eval: null, padTokenId: 0 }, c, {
    save: async (kind, state, optimizer) => {
      if (kind === 'checkpoint' && state.global_step === 2) {
        saved = { state: structuredClone(state), m: optimizer.m.slice(), v: optimizer.v.slice(), step: optimizer.step, params: model.params.slice() };
      }
    },
  }, null, { objective: objectiveFromConfig(c), reference });
  const s = saved!;
  assert.equal(s.state.ref_logps?.chosen.length, pairs.length);
  const resumed = createModel(tinyConfig, { seed: 5 });
  resumed.params.set(s.params);
  const spy = modelReference(createModel(tinyConfig, { seed: 5 }), { description: 'initial' });
  const r = await train(resumed, { train: pairs, eval: null, padTokenId: 0 }, c, {}, { state: s.state, m: s.m, v: s.v, optimizerStep: s.step },
    { objective: objectiveFromConfig(c), reference: spy });
  assert.equal(spy.tokens, 0, 'the resumed run used the saved reference log-probs');
  assert.equal(r.state.global_step, 4);
  assert.equal(maxAbsDiff(resumed.params, model.params), 0, 'resume is exact');
  assert.equal(maxAbsDiff(resumed.params, pre.model.params), 0, 'and equals the run without checkpoints');
});

test('DPO under LoRA: the reference is the base with the adapters switched off, no second copy of the weights', async () => {
  const pairs = tinyPairs(4);
  const batch = collatePairs(pairs, 0);
  const model = createModel(tinyConfig, { seed: 9 });
  const baseCopy = createModel(tinyConfig, { seed: 9 });
  const adapters = attachLora(model, { r: 4, alpha: 8, dropout: 0, targetModules: ['q_proj', 'v_proj', 'down_proj'] }, { seed: 1 });
  // move the adapters off zero so the policy differs from the base
  const rng = new Rng(3);
  for (let i = 0; i < adapters.params.length; i++) adapters.params[i] = 0.2 * (rng.uniform() - 0.5);
  const reference = modelReference(model, { adapters, description: 'adapters off' });
  const ref = await reference.logps(batch);
  const want = await modelReference(baseCopy, { description: 'base' }).logps(batch);
  for (let i = 0; i < pairs.length; i++) {
    assert.ok(Math.abs(ref.chosen[i]! - want.chosen[i]!) < 1e-5, `chosen ${i}: ${ref.chosen[i]} vs base ${want.chosen[i]}`);
    assert.ok(Math.abs(ref.rejected[i]! - want.rejected[i]!) < 1e-5, `rejected ${i}`);
  }
  // the adapters are back on afterwards, and the policy differs from its reference
  const objective = createObjective({ method: 'dpo' });
  adapters.zeroGrad();
  const step = await objectiveStep(model, batch, objective, { reference });
  assert.ok(Math.abs(step.loss - Math.LN2) > 1e-4, `policy != reference: loss ${step.loss}`);
  let g = 0;
  for (const x of adapters.grads) g = Math.max(g, Math.abs(x));
  assert.ok(g > 0, 'the adapters get gradients');
  // no second copy: the reference computes with the policy's own parameter buffer, and with zero adapters the
  // policy IS the reference (DPO's first loss is ln 2)
  adapters.params.fill(0);
  assert.ok(Math.abs((await objectiveStep(model, batch, objective, { reference })).loss - Math.LN2) < 1e-6);
});

test('every method: the fused chunked head, gradient checkpointing and TRL\'s two rows give the plain step\'s loss, metrics and gradients', async () => {
  const { FusedLogprobHead } = await import('../src/loss/fused-head.js');
  const batch = collatePairs(tinyPairs(6), 0);
  for (const method of METHODS) {
    const objective = createObjective({ method });
    const run = async (variant: 'plain' | 'fused' | 'checkpointing' | 'two-rows'): Promise<{ loss: number; metrics: Record<string, number>; grads: Float32Array }> => {
      const model = createModel(tinyConfig, { seed: 21 });
      model.gradientCheckpointing = variant === 'checkpointing';
      const reference = method === 'dpo' ? modelReference(createModel(tinyConfig, { seed: 22 }), { description: 'other' }) : null;
      const head = variant === 'fused' ? new FusedLogprobHead(model.kernels, { chunkRows: 3 }) : undefined;
      model.zeroGrad();
      const r = await objectiveStep(model, batch, objective, { reference, head, sharePrompt: variant !== 'two-rows' });
      return { loss: r.loss, metrics: r.metrics as Record<string, number>, grads: model.grads.slice() };
    };
    const plain = await run('plain');
    let gmax = 0;
    for (const g of plain.grads) gmax = Math.max(gmax, Math.abs(g));
    for (const variant of ['fused', 'checkpointing', 'two-rows'] as const) {
      const v = await run(variant);
      assert.ok(Math.abs(v.loss - plain.loss) <= 1e-5 * Math.abs(plain.loss), `${method}/${variant}: loss ${v.loss} vs ${plain.loss}`);
      for (const [k, x] of Object.entries(plain.metrics)) assert.ok(Math.abs(v.metrics[k]! - x) <= 1e-5 * Math.abs(x) + 1e-6, `${method}/${variant}: ${k}`);
      assert.ok(maxAbsDiff(v.grads, plain.grads) <= 1e-4 * gmax + 1e-7, `${method}/${variant}: gradients`);
    }
  }
});
