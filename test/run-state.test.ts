// Issue 14, the run's state on disk: an output folder holding another run's checkpoints is not silently shared,
// train_results.json and trainer_state.json are in transformers' layout (train_loss the run's mean, booleans as
// booleans, eval timing logged as transformers logs it), and tokens per second count training time only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { orpo, tinyCliRun } from './helpers/tiny-cli-run.js';

const { root, modelDir, data } = tinyCliRun('orpo-run-state-');

const trainArgs = (out: string, extra: string[] = ['--max-steps', '6']): string[] => [
  'train', '--model', modelDir, '--dataset', data.train, '--eval-dataset', data.eval, '--output-dir', out, '--learning-rate', '5e-3',
  '--per-device-train-batch-size', '2', '--logging-steps', '1', '--eval-steps', '3', '--save-steps', '2',
  '--threads', '1', '--no-report', ...extra,
];
const json = (file: string): Record<string, unknown> => JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
const records = (dir: string): Record<string, number>[] =>
  readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
const checkpoints = (dir: string): string[] => readdirSync(dir).filter((n) => /^checkpoint-\d+$/.test(n)).sort();

test("a run from step 0 into a folder holding another run's checkpoints is refused, naming them; the old run stays resumable", () => {
  const out = join(root, 'reused');
  assert.equal(orpo(trainArgs(out, ['--max-steps', '4'])).code, 0);
  assert.deepEqual(checkpoints(out), ['checkpoint-2', 'checkpoint-4']);
  const again = orpo(trainArgs(out, ['--max-steps', '2', '--seed', '7']));
  // before: a warning, then checkpoint-2 of the new run beside checkpoint-4 of the old, which --resume then continued
  assert.equal(again.code, 2, again.stderr);
  assert.match(again.stderr, /already holds checkpoint-2, checkpoint-4 from an earlier run.*Continue that run with --resume, train into another --output-dir, or give --overwrite-output-dir/);
  assert.deepEqual(checkpoints(out), ['checkpoint-2', 'checkpoint-4']);
  assert.equal(json(join(out, 'checkpoint-4', 'trainer_state.json'))['global_step'], 4, 'the old run is untouched');
  const resumed = orpo(['train', '--output-dir', out, '--resume', '--max-steps', '6']);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stderr, /resuming from .*checkpoint-4 \(step 4 of 4\)/);
  // a folder with a final model and no checkpoints (save_steps 0, as the demo trains) is taken again: nothing resumes from it
  const finalOnly = join(root, 'final-only');
  const finalArgs = ['train', '--model', modelDir, '--dataset', data.train, '--output-dir', finalOnly, '--max-steps', '2', '--save-steps', '0', '--no-report'];
  for (let i = 0; i < 2; i++) assert.equal(orpo(finalArgs).code, 0);
});

test('--overwrite-output-dir (transformers\' overwrite_output_dir) deletes the earlier run\'s checkpoints, and --resume then continues the new run', () => {
  const out = join(root, 'overwritten');
  assert.equal(orpo(trainArgs(out, ['--max-steps', '6'])).code, 0);
  const fresh = orpo(trainArgs(out, ['--max-steps', '2', '--overwrite-output-dir']));
  assert.equal(fresh.code, 0, fresh.stderr);
  assert.match(fresh.stderr, /overwrite_output_dir: deleted checkpoint-2, checkpoint-4, checkpoint-6 of an earlier run/);
  assert.deepEqual(checkpoints(out), ['checkpoint-2']);
  const resumed = orpo(['train', '--output-dir', out, '--resume', '--max-steps', '3']);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stderr, /resuming from .*checkpoint-2 \(step 2 of 2\)/);
});

test("train_results.json in transformers' layout: the run's mean train_loss, booleans, plain keys, runtime and speeds; tokens/s over training time only", () => {
  const out = join(root, 'results');
  const r = orpo(trainArgs(out));
  assert.equal(r.code, 0, r.stderr);
  const s = json(join(out, 'train_results.json'));
  for (const key of Object.keys(s)) assert.match(key, /^[A-Za-z0-9_/]+$/, `key ${JSON.stringify(key)}`);
  assert.equal(s['interrupted'], false); // before: the string "false"
  for (const key of ['train_runtime', 'train_samples_per_second', 'train_steps_per_second', 'epoch', 'train_loss', 'train_step_runtime',
    'train_tokens_per_second', 'eval_loss', 'eval_runtime', 'eval_samples_per_second', 'eval_steps_per_second', 'initial_eval_loss',
    'train_samples', 'eval_samples', 'global_step', 'max_steps']) {
    assert.equal(typeof s[key], 'number', key);
  }
  assert.ok(!('train_runtime_seconds' in s));
  const rs = records(out);
  const losses = rs.filter((x) => 'loss' in x).map((x) => x['loss']!);
  assert.equal(losses.length, 6);
  // transformers' train_loss: the mean over every step (logging_steps 1: the logged losses), not the last one
  const mean = losses.reduce((a, b) => a + b, 0) / losses.length;
  assert.ok(Math.abs((s['train_loss'] as number) - mean) < 1e-6 * mean, `train_loss ${s['train_loss']} vs the steps' mean ${mean}`);
  assert.notEqual(s['train_loss'], losses[losses.length - 1]);
  const evals = rs.filter((x) => 'eval_loss' in x);
  assert.equal(s['eval_loss'], evals[evals.length - 1]!['eval_loss']);
  assert.equal(s['initial_eval_loss'], evals[0]!['eval_loss']);
  assert.equal(s['epoch'], 0.3); // 6 steps of 2 pairs out of 40
  assert.equal(s['train_samples'], 40);
  assert.equal(s['eval_samples'], 8);
  // the runtime counts evaluations and saves, tokens per second only the steps (the step lines' measure)
  const runtime = s['train_runtime'] as number;
  const stepTime = s['train_step_runtime'] as number;
  assert.ok(stepTime > 0 && stepTime < runtime, `${stepTime} vs ${runtime}`);
  const tokens = s['num_input_tokens_seen'] as number;
  assert.ok(Math.abs((s['train_tokens_per_second'] as number) - tokens / stepTime) <= 0.01 * tokens / stepTime + 1);
  assert.ok(Math.abs((s['train_steps_per_second'] as number) - 6 / runtime) <= 0.01 * 6 / runtime + 0.001);
  assert.match(r.stderr, /train_tokens_per_second +\d+ \(over train_step_runtime, as the step lines\)/);
  // every evaluation logs transformers' timing with its metrics
  for (const e of evals) {
    assert.ok(e['eval_runtime']! > 0 && e['eval_samples_per_second']! > 0 && e['eval_steps_per_second']! > 0, JSON.stringify(e));
    // eval_runtime is rounded to 0.1 ms as transformers rounds it, the rate is computed before that rounding
    assert.ok(Math.abs(e['eval_samples_per_second']! * e['eval_runtime']! - 8) <= 0.01 * 8 + e['eval_samples_per_second']! * 5e-5, JSON.stringify(e));
  }
});

// transformers' TrainerState fields (trainer_callback.py): TrainerState.load_from_json takes exactly these
const HF_TRAINER_STATE_FIELDS = [
  'epoch', 'global_step', 'max_steps', 'logging_steps', 'eval_steps', 'save_steps', 'train_batch_size', 'num_train_epochs',
  'num_input_tokens_seen', 'total_flos', 'log_history', 'best_metric', 'best_global_step', 'best_model_checkpoint', 'is_local_process_zero',
  'is_world_process_zero', 'is_hyper_param_search', 'trial_name', 'trial_params', 'stateful_callbacks',
];

test("trainer_state.json in transformers' TrainerState layout; the exact-resume state under a named stateful callback, and resume stays exact", () => {
  const straight = join(root, 'results');
  if (!existsSync(join(straight, 'train_results.json'))) assert.equal(orpo(trainArgs(straight)).code, 0); // when run alone
  const st = json(join(straight, 'checkpoint-4', 'trainer_state.json'));
  for (const key of Object.keys(st)) assert.ok(HF_TRAINER_STATE_FIELDS.includes(key), `${key} is not a TrainerState field`);
  assert.equal(st['global_step'], 4);
  assert.equal(st['max_steps'], 6);
  assert.equal(st['logging_steps'], 1);
  assert.equal(st['eval_steps'], 3);
  assert.equal(st['save_steps'], 2);
  assert.equal(st['train_batch_size'], 2);
  assert.equal(st['num_train_epochs'], 1);
  assert.equal(st['epoch'], 0.2);
  assert.equal(st['best_model_checkpoint'], null);
  assert.equal(st['trial_name'], null);
  const history = st['log_history'] as Record<string, number>[];
  assert.ok(history.length > 0 && history.every((x) => typeof x['step'] === 'number' && typeof x['epoch'] === 'number'));
  const resume = (st['stateful_callbacks'] as Record<string, { args: object; attributes: Record<string, unknown> }>)['OrpoTsResumeState']!;
  assert.deepEqual(resume.args, {});
  for (const key of ['order', 'rng', 'window', 'schedule', 'optimizer_step', 'train_loss_sum']) assert.ok(key in resume.attributes, key);

  // killed while saving checkpoint-4 and resumed: the same train_loss (the sum of step losses travels in the state)
  const resumed = join(root, 'results-resumed');
  assert.equal(orpo(trainArgs(resumed), { ORPO_TEST_KILL_DURING_SAVE: '4' }).signal, 'SIGKILL');
  const r = orpo([...trainArgs(resumed), '--resume']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(json(join(resumed, 'train_results.json'))['train_loss'], json(join(straight, 'train_results.json'))['train_loss']);
  const attributes = (dir: string): Record<string, unknown> =>
    (json(join(dir, 'checkpoint-6', 'trainer_state.json'))['stateful_callbacks'] as Record<string, { attributes: Record<string, unknown> }>)['OrpoTsResumeState']!.attributes;
  // everything but the window's wall time is the same
  for (const key of ['order', 'rng', 'train_loss_sum', 'tokens_seen', 'optimizer_step', 'epoch_index', 'pair_offset', 'schedule']) {
    assert.deepEqual(attributes(resumed)[key], attributes(straight)[key], key);
  }
});
