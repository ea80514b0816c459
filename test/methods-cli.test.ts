// The methods through the `orpo` command, as a user runs them: --method sft/dpo/simpo end to end, DPO's reference
// choices (frozen copy, --ref-model, LoRA adapters off, precomputed and kept in checkpoints), exact resume of a DPO
// run with precomputed log-probs, orpo eval --method, and clear errors for options of another method.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeDemoData, writeDemoModelFolder } from '../src/cli/demo.js';
import { arithmeticTask } from '../src/train/demo-task.js';

const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'orpo-methods-'));
const modelDir = join(root, 'model');
const refDir = join(root, 'ref');
let data: { train: string; eval: string };

after(() => rmSync(root, { recursive: true, force: true }));

before(async () => {
  await writeDemoModelFolder(modelDir, { hiddenSize: 16, layers: 1, heads: 2, intermediateSize: 32 }, 4);
  await writeDemoModelFolder(refDir, { hiddenSize: 16, layers: 1, heads: 2, intermediateSize: 32 }, 5);
  data = await writeDemoData(join(root, 'data'), arithmeticTask(9, 40, 8));
});

function orpo(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const trainArgs = (out: string, extra: string[]): string[] => [
  'train', '--model', modelDir, '--dataset', data.train, '--eval-dataset', data.eval, '--output-dir', out,
  '--learning-rate', '5e-3', '--max-steps', '4', '--per-device-train-batch-size', '2', '--gradient-accumulation-steps', '2',
  '--logging-steps', '1', '--save-steps', '2', '--threads', '1', '--no-report', ...extra,
];

const records = (dir: string): Record<string, number>[] =>
  readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
const withoutTimings = (rs: Record<string, number>[]): Record<string, number>[] =>
  rs.map(({ tokens_per_second: _t, eval_runtime: _r, eval_samples_per_second: _s, eval_steps_per_second: _p, ...rest }) => rest);

test('orpo train --method sft, dpo, simpo: TRL metric names, the method recorded, the loss falls', () => {
  const expect: Record<string, string[]> = {
    sft: ['loss', 'mean_token_accuracy'],
    dpo: ['loss', 'rewards/chosen', 'rewards/margins', 'logps/chosen', 'logits/chosen'],
    simpo: ['loss', 'rewards/accuracies', 'logps/rejected', 'logits/rejected'],
  };
  for (const [method, names] of Object.entries(expect)) {
    const out = join(root, method);
    const r = orpo(trainArgs(out, ['--method', method]));
    assert.equal(r.code, 0, r.stderr);
    const rs = records(out);
    const train = rs.filter((x) => 'loss' in x);
    for (const n of names) assert.ok(n in train[0]!, `${method}: ${n}`);
    assert.ok(!('log_odds_ratio' in train[0]!), `${method} has no ORPO metrics`);
    const evals = rs.filter((x) => 'eval_loss' in x);
    // DPO's first loss is ln 2 (the policy is its reference); its held-out loss need not fall in 4 steps of a tiny
    // random model (methods-train.test.ts checks every method's loss falls on the pairs it trains on)
    if (method === 'dpo') assert.equal(train[0]!['loss'], Math.round(Math.LN2 * 1e8) / 1e8);
    else assert.ok(evals[evals.length - 1]!['eval_loss']! < evals[0]!['eval_loss']!, `${method}: the held-out loss falls`);
    assert.ok('eval_mean_logps/margin' in evals[0]!, `${method}: neutral eval metrics`);
    const summary = JSON.parse(readFileSync(join(out, 'train_results.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(summary['method'], method);
    assert.equal(summary['reference_forward_tokens'] !== 0, method === 'dpo');
    const args = JSON.parse(readFileSync(join(out, 'checkpoint-2', 'training_args.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(args['method'], method);
  }
});

test('orpo train --method dpo: reference choices, precomputed log-probs kept in checkpoints, exact resume', () => {
  // LoRA: the reference is the policy with its adapters off
  const lora = orpo(trainArgs(join(root, 'dpo-lora'), ['--method', 'dpo', '--lora-r', '4']));
  assert.equal(lora.code, 0, lora.stderr);
  assert.match(lora.stderr, /reference model: .* with the LoRA adapters switched off \(no second copy\)/);
  const copy = orpo(trainArgs(join(root, 'dpo-copy'), ['--method', 'dpo']));
  assert.match(copy.stderr, /reference model: a frozen copy of /);
  // --ref-model: another reference gives other rewards from the first step
  const other = orpo(trainArgs(join(root, 'dpo-ref'), ['--method', 'dpo', '--ref-model', refDir]));
  assert.equal(other.code, 0, other.stderr);
  assert.notEqual(records(join(root, 'dpo-ref'))[1]!['loss'], records(join(root, 'dpo-copy'))[1]!['loss']);
  assert.equal(records(join(root, 'dpo-copy'))[1]!['loss'], Math.round(Math.LN2 * 1e8) / 1e8, 'the initial policy is its own reference: ln 2');

  // precomputed: the same run, and a resume from checkpoint-2 ends exactly where the whole run did
  const pre = join(root, 'dpo-pre');
  const r = orpo(trainArgs(pre, ['--method', 'dpo', '--precompute-ref-log-probs']));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /reference model: .* itself, before the first step \(no copy\)/);
  // trainer_state.json is transformers' layout; orpo-ts's resume state is a stateful callback's attributes in it
  const file = JSON.parse(readFileSync(join(pre, 'checkpoint-2', 'trainer_state.json'), 'utf8')) as
    { stateful_callbacks: { OrpoTsResumeState: { attributes: { ref_logps?: { chosen: number[] }; eval_ref_logps?: { chosen: number[] } } } } };
  const state = file.stateful_callbacks.OrpoTsResumeState.attributes;
  assert.equal(state.ref_logps?.chosen.length, 40);
  assert.equal(state.eval_ref_logps?.chosen.length, 8);
  // the same held-out evaluations as with the reference on the fly
  const evalsOf = (dir: string): Record<string, number>[] => records(dir).filter((x) => 'eval_loss' in x);
  for (const [a, b] of evalsOf(pre).map((e, i) => [e, evalsOf(join(root, 'dpo-copy'))[i]!] as const)) {
    assert.ok(Math.abs(a['eval_loss']! - b['eval_loss']!) <= 1e-6, `eval_loss ${a['eval_loss']} vs ${b['eval_loss']}`);
  }
  const fly = records(join(root, 'dpo-copy')).filter((x) => 'loss' in x).map((x) => x['loss']!);
  const prel = records(pre).filter((x) => 'loss' in x).map((x) => x['loss']!);
  for (let i = 0; i < fly.length; i++) assert.ok(Math.abs(fly[i]! - prel[i]!) <= 1e-6, `step ${i + 1}: ${fly[i]} vs ${prel[i]}`);
  const whole = withoutTimings(records(pre));
  const resumed = orpo(['train', '--output-dir', pre, '--resume', join(pre, 'checkpoint-2')]);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.deepEqual(withoutTimings(records(pre)), whole);

  // orpo eval --method dpo needs the reference it measures against: a plain model folder has none; a DPO run's
  // folder records its own (the model it started from), and eval uses it
  const noRef = orpo(['eval', '--model', modelDir, '--dataset', data.eval, '--method', 'dpo']);
  assert.equal(noRef.code, 2);
  assert.match(noRef.stderr, /needs --ref-model DIR/);
  const own = orpo(['eval', '--model', pre, '--dataset', data.eval, '--json']);
  assert.equal(own.code, 0, own.stderr);
  assert.match(own.stderr, /method dpo.*ref_model .*model\)/);
  const lastEval = records(pre).filter((x) => 'eval_loss' in x).pop()!;
  assert.ok(Math.abs((JSON.parse(own.stdout) as Record<string, number>)['eval_loss']! - lastEval['eval_loss']!) <= 1e-6, 'the run\'s own final evaluation');
  const ev = orpo(['eval', '--model', pre, '--dataset', data.eval, '--method', 'dpo', '--ref-model', modelDir, '--json']);
  assert.equal(ev.code, 0, ev.stderr);
  const m = JSON.parse(ev.stdout) as Record<string, number | string>;
  assert.equal(m['method'], 'dpo');
  for (const k of ['eval_loss', 'eval_rewards/margins', 'eval_logps/chosen', 'eval_logits/chosen', 'eval_mean_logps/accuracy']) assert.ok(typeof m[k] === 'number', k);
});

test('options of another method are refused before anything runs, naming the option', () => {
  const a = orpo(trainArgs(join(root, 'x1'), ['--method', 'orpo', '--ref-model', refDir]));
  assert.equal(a.code, 2);
  assert.match(a.stderr, /ref_model is a dpo option; method is orpo/);
  const b = orpo(trainArgs(join(root, 'x2'), ['--method', 'sft', '--beta', '0.2']));
  assert.equal(b.code, 2);
  assert.match(b.stderr, /beta has no meaning for method sft/);
  const c = orpo(trainArgs(join(root, 'x3'), ['--method', 'ppo']));
  assert.equal(c.code, 2);
  assert.match(c.stderr, /method.*one of orpo, sft, dpo, simpo/);
});
