// The trainer in process: schedules against transformers' formulas, the option table's validation, gradient
// accumulation against the larger batch, and the NaN guard.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { learningRateAt, lrMultiplier, resolveWarmupSteps, type ScheduleConfig } from '../src/optim/schedule.js';
import { objectiveFromConfig, TRAIN_OPTIONS, validateTrainConfig, type TrainConfig } from '../src/train/config.js';
import { defaultsOf, formatHelp, OptionError, resolveOptions } from '../src/train/options.js';
import { NonFiniteError, train, totalStepsOf, type TrainerState } from '../src/train/trainer.js';
import { createModel } from '../src/model/create.js';
import { arithmeticTask, demoEncode, demoModelConfig } from '../src/train/demo-task.js';
import type { TokenPair } from '../src/data/collate.js';
import type { CausalLM } from '../src/model/types.js';

const sched = (type: ScheduleConfig['type'], warmupSteps: number, totalSteps = 10): ScheduleConfig =>
  ({ type, baseLr: 1, warmupSteps, totalSteps });
const close = (a: number, b: number, tol = 1e-12): void => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

test('schedules match transformers (get_scheduler lambdas) step by step', () => {
  // linear, warmup 2 of 10: 0, 1/2, then (10 - s) / 8
  assert.deepEqual([0, 1, 2, 3, 9, 10].map((s) => lrMultiplier(sched('linear', 2), s)), [0, 0.5, 1, 7 / 8, 1 / 8, 0]);
  // cosine: 0.5 (1 + cos(pi progress)) after warmup
  close(lrMultiplier(sched('cosine', 2), 6), 0.5 * (1 + Math.cos(Math.PI * 0.5)));
  close(lrMultiplier(sched('cosine', 0), 0), 1);
  close(lrMultiplier(sched('cosine', 0), 10), 0);
  assert.deepEqual([0, 1, 5].map((s) => lrMultiplier(sched('constant_with_warmup', 4), s)), [0, 0.25, 1]);
  assert.equal(lrMultiplier(sched('constant', 4), 0), 1);
  // inverse_sqrt: timescale = warmup; 1/sqrt(step / warmup) after it; 10,000 without warmup
  close(lrMultiplier(sched('inverse_sqrt', 4), 16), 0.5);
  close(lrMultiplier(sched('inverse_sqrt', 0), 30000), 1 / Math.sqrt(4));
  close(learningRateAt({ ...sched('linear', 0), baseLr: 2e-5 }, 5), 1e-5);
  // warmup_ratio: ceil(total * ratio), explicit steps win
  assert.equal(resolveWarmupSteps(95, 0, 0.1), 10);
  assert.equal(resolveWarmupSteps(95, 3, 0.1), 3);
});

test('options: defaults are TRL\'s, values are typed, bad values and unknown names are named', () => {
  const d = defaultsOf(TRAIN_OPTIONS);
  // beta unset resolves to the method's TRL default
  assert.equal(d.method, 'orpo');
  assert.equal(d.beta, null);
  assert.equal(objectiveFromConfig(d).options['beta'], 0.1);
  assert.equal(objectiveFromConfig({ ...d, method: 'dpo' }).options['beta'], 0.1);
  assert.equal(objectiveFromConfig({ ...d, method: 'simpo' }).options['beta'], 2.0);
  assert.equal(objectiveFromConfig({ ...d, method: 'simpo' }).options['simpo_gamma'], 0.5);
  assert.equal(objectiveFromConfig({ ...d, method: 'sft' }).options['completion_only_loss'], true);
  assert.equal(d.learning_rate, 1e-6);
  assert.equal(d.lr_scheduler_type, 'linear');
  const c = resolveOptions(TRAIN_OPTIONS, [
    { source: 'cfg.yaml', values: { beta: 0.25, max_steps: 7, lr_scheduler_type: 'cosine' } },
    { source: 'orpo train', values: { beta: '0.5', report: 'false' }, flagStyle: true },
  ]);
  assert.equal(c.beta, 0.5); // the flag overrides the file
  assert.equal(c.max_steps, 7);
  assert.equal(c.report, false);
  const bad = (values: Record<string, unknown>, re: RegExp, flagStyle = true): void =>
    assert.throws(() => resolveOptions(TRAIN_OPTIONS, [{ source: 'orpo train', values, flagStyle }]), (e: Error) => e instanceof OptionError && re.test(e.message));
  bad({ beta: 'abc' }, /--beta.*"abc".*beta.*expected number/);
  bad({ learning_rate: '0' }, /learning_rate.*must be > 0/);
  bad({ per_device_train_batch_size: '2.5' }, /per_device_train_batch_size.*integer/);
  bad({ lr_scheduler_type: 'cosinus' }, /lr_scheduler_type.*one of linear, cosine/);
  bad({ lerning_rate: '1e-5' }, /unknown option '--lerning-rate' \(did you mean --learning-rate\?\)/);
  bad({ betaa: 1 }, /cfg|unknown option 'betaa' \(did you mean beta\?\)/, false);
  assert.throws(() => validateTrainConfig({ ...d, model: 'm', dataset: 'd', output_dir: 'o', max_prompt_length: 600, max_length: 512 }),
    /max_prompt_length \(600\) must be an integer in \[1, max_length\).*max_length is 512: set --max-prompt-length below 512, or leave it unset/);
  assert.throws(() => validateTrainConfig({ ...d, dataset: 'd', output_dir: 'o' }), /missing required option 'model' \(--model\)/);
  // max_length alone is always enough: the prompt limit follows it unless set
  assert.equal(d.max_prompt_length, null);
  for (const max_length of [2, 64, 512]) validateTrainConfig({ ...d, model: 'm', dataset: 'd', output_dir: 'o', max_length });
  const help = formatHelp(TRAIN_OPTIONS);
  for (const key of Object.keys(TRAIN_OPTIONS)) assert.ok(help.includes(`--${key.replace(/_/g, '-')}`), `--help lacks ${key}`);
  assert.match(help, /weight of the odds-ratio term.*\[λ\]/);
});

const tinyConfig = demoModelConfig({ hiddenSize: 16, layers: 1, heads: 2, intermediateSize: 32 });

function tinyPairs(n: number): TokenPair[] {
  return arithmeticTask(5, n, 1).train.map((p) => ({
    prompt: [1, ...demoEncode(p.prompt)], chosen: [...demoEncode(p.chosen), 2], rejected: [...demoEncode(p.rejected), 2],
  }));
}

function config(over: Partial<TrainConfig>): TrainConfig {
  return { ...defaultsOf(TRAIN_OPTIONS), model: 'm', dataset: 'd', output_dir: 'o', learning_rate: 1e-2, logging_steps: 1, ...over };
}

test('gradient accumulation 2 x 2 gives the update of one batch of 4 (prompt and response lengths differ)', async () => {
  // pairs of different lengths, so a per-micro-batch mean would weight tokens differently and fail this test
  const pairs = tinyPairs(8);
  pairs[1] = { ...pairs[1]!, prompt: pairs[1]!.prompt.slice(0, 3), chosen: [5, 6, 7, 8, 9, 2] };
  for (const sftScope of ['full', 'response'] as const) {
    const run = async (bs: number, accum: number): Promise<{ model: CausalLM; loss: number }> => {
      const model = createModel(tinyConfig, { seed: 11 });
      const r = await train(model, { train: pairs, eval: null, padTokenId: 0 },
        config({ per_device_train_batch_size: bs, gradient_accumulation_steps: accum, max_steps: 1, sft_scope: sftScope, max_grad_norm: 0, learning_rate: 1e-3 }));
      return { model, loss: r.lastTrain!['loss']! };
    };
    const big = await run(4, 1);
    const acc = await run(2, 2);
    const untouched = createModel(tinyConfig, { seed: 11 });
    // the accumulated gradient equals the big batch's (the trainer leaves the last step's gradients in place)
    let gradDiff = 0;
    let gradMax = 0;
    for (let i = 0; i < big.model.grads.length; i++) {
      gradDiff = Math.max(gradDiff, Math.abs(big.model.grads[i]! - acc.model.grads[i]!));
      gradMax = Math.max(gradMax, Math.abs(big.model.grads[i]!));
    }
    assert.ok(gradDiff <= 1e-5 * gradMax, `${sftScope}: gradient difference ${gradDiff} of ${gradMax}`);
    let maxDiff = 0;
    let maxMove = 0;
    for (let i = 0; i < big.model.params.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(big.model.params[i]! - acc.model.params[i]!));
      maxMove = Math.max(maxMove, Math.abs(big.model.params[i]! - untouched.params[i]!));
    }
    assert.ok(maxMove > 5e-4, 'the step moved the parameters');
    assert.ok(maxDiff < 1e-6, `${sftScope}: max parameter difference ${maxDiff}`);
    close(acc.loss, big.loss, 1e-5);
  }
});

test('steps: epochs x ceil(pairs / (batch x accumulation)), or max_steps', () => {
  assert.equal(totalStepsOf(10, config({ num_train_epochs: 2, per_device_train_batch_size: 2, gradient_accumulation_steps: 2 })), 6);
  assert.equal(totalStepsOf(10, config({ max_steps: 4 })), 4);
});

test('resume with a larger max_steps trains on to it, the schedule stretched over the new total', async () => {
  const pairs = tinyPairs(8);
  const c = config({ max_steps: 2, per_device_train_batch_size: 2, learning_rate: 1e-3, warmup_steps: 1 });
  const model = createModel(tinyConfig, { seed: 4 });
  let saved: { state: TrainerState; m: Float32Array; v: Float32Array; step: number } | null = null;
  await train(model, { train: pairs, eval: null, padTokenId: 0 }, c, {
    save: async (kind, state, optimizer) => {
      if (kind === 'final') saved = { state: structuredClone(state), m: optimizer.m.slice(), v: optimizer.v.slice(), step: optimizer.step };
    },
  });
  const s = saved!;
  assert.equal(s.state.global_step, 2);
  const r = await train(model, { train: pairs, eval: null, padTokenId: 0 }, { ...c, max_steps: 5 }, {},
    { state: s.state, m: s.m, v: s.v, optimizerStep: s.step });
  assert.equal(r.state.global_step, 5);
  assert.equal(r.state.schedule.totalSteps, 5);
  // linear decay from step 1 (warm-up) to 0 at step 5
  close(learningRateAt(r.state.schedule, 3), 1e-3 * (5 - 3) / 4, 1e-12);
  // a total already reached ends the resumed run at once
  const done = await train(model, { train: pairs, eval: null, padTokenId: 0 }, { ...c, max_steps: 3 }, {},
    { state: structuredClone(r.state), m: s.m, v: s.v, optimizerStep: 5 });
  assert.equal(done.state.global_step, 5);
});

test('a NaN loss stops the run naming the step, and nothing is saved', async () => {
  const model = createModel(tinyConfig, { seed: 2 });
  const saves: string[] = [];
  let steps = 0;
  // poison the weights after the second step
  const hooks = {
    progress: (): void => {
      steps++;
      if (steps === 2) model.param('model.norm.weight')[0] = NaN;
    },
    save: async (kind: string): Promise<void> => void saves.push(kind),
  };
  await assert.rejects(train(model, { train: tinyPairs(8), eval: null, padTokenId: 0 }, config({ max_steps: 5, per_device_train_batch_size: 2, save_steps: 3 }), hooks),
    (e: Error) => e instanceof NonFiniteError && /step 3: the (loss|gradient norm) is NaN.*model\.norm\.weight/.test(e.message));
  assert.deepEqual(saves, []); // the checkpoint of step 3 is never reached
});

test('progress: a bar redrawn in place on a terminal, plain lines otherwise', async () => {
  const { ProgressReporter } = await import('../src/cli/progress.js');
  const sink = (tty: boolean): { stream: NodeJS.WriteStream; text: () => string } => {
    let text = '';
    const stream = { isTTY: tty, columns: 200, write: (s: string) => ((text += s), true) } as unknown as NodeJS.WriteStream;
    return { stream, text: () => text };
  };
  const p = { step: 5, totalSteps: 10, epoch: 0.5, loss: 1.25, margin: 0.1, accuracy: 0.75, tokensPerSecond: 1234, eta: 65 };
  const record = { step: 5, epoch: 0.5, loss: 1.25, nll_loss: 1, 'rewards/margins': 0.1, 'rewards/accuracies': 0.75, learning_rate: 1e-5, grad_norm: 2, tokens_per_second: 1234 };
  const tty = sink(true);
  const onTty = new ProgressReporter(tty.stream);
  onTty.progress(p);
  onTty.log(record); // training records are in the bar already
  assert.match(tty.text(), /^\r█{10}░{10} 5\/10 ETA 1:05 loss 1\.2500 margin 0\.1000 acc 0\.75 1234 tok\/s ep 0\.50\x1b\[K$/);
  const plain = sink(false);
  const onPipe = new ProgressReporter(plain.stream);
  onPipe.progress(p);
  onPipe.log(record);
  onPipe.log({ step: 5, epoch: 0.5, eval_loss: 2, 'eval_rewards/accuracies': 0.5 });
  assert.equal(plain.text(), 'step 5 epoch 0.50 loss 1.2500 nll 1.0000 margin 0.1000 acc 0.750 lr 1.00e-5 grad_norm 2.000 1234 tok/s\n' +
    'eval step 5 epoch 0.50 loss 2.0000 nll - margin - acc 0.500\n');
});

test('evaluation shows progress: a bar on a terminal, and never floods a log', async () => {
  const { ProgressReporter } = await import('../src/cli/progress.js');
  let text = '';
  const stream = { isTTY: true, columns: 200, write: (s: string) => ((text += s), true) } as unknown as NodeJS.WriteStream;
  const r = new ProgressReporter(stream);
  r.evaluating(0, 40);
  r.evaluating(40, 40);
  assert.match(text, /eval █{20} 40\/40 pairs ETA 0:00\x1b\[K$/);
  let logged = '';
  const pipe = new ProgressReporter({ isTTY: false, write: (s: string) => ((logged += s), true) } as unknown as NodeJS.WriteStream);
  for (let done = 0; done <= 400; done += 8) pipe.evaluating(done, 400);
  assert.equal(logged, '', 'a quick evaluation prints nothing but its result in a log');
});
