// Issue 13, the training side: nothing non-finite ever reaches disk, a diverging run stops saying what diverged
// and which checkpoint is still good, a loaded checkpoint is checked, and only a checkpoint whose completion marker
// was written last counts as one (a kill while deleting or saving leaves nothing that resumes wrongly).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { orpo, tinyCliRun } from './helpers/tiny-cli-run.js';
import { arithmeticTask, demoEncode, demoModelConfig } from '../src/train/demo-task.js';
import { loadModel, saveModel } from '../src/io/hf-model.js';
import { readSafetensorsHeader, readTensorF32, writeSafetensors } from '../src/io/safetensors.js';
import { createModel } from '../src/model/create.js';
import { NonFiniteError, train } from '../src/train/trainer.js';
import { defaultsOf } from '../src/train/options.js';
import { TRAIN_OPTIONS, type TrainConfig } from '../src/train/config.js';
import type { TokenPair } from '../src/data/collate.js';

const { root, modelDir, data } = tinyCliRun('orpo-hostile-train-');

const trainArgs = (out: string, extra: string[]): string[] => [
  'train', '--model', modelDir, '--dataset', data.train, '--output-dir', out, '--per-device-train-batch-size', '2',
  '--logging-steps', '1', '--threads', '1', '--no-report', ...extra,
];

const checkpoints = (dir: string): string[] => readdirSync(dir).filter((n) => /^checkpoint-\d+$/.test(n)).sort();

/** every number a checkpoint folder holds (weights and AdamW moments) is finite */
async function assertAllFinite(dir: string): Promise<void> {
  const model = await loadModel(dir);
  assert.ok(model.params.every(Number.isFinite), `${dir}: weights`);
  const header = await readSafetensorsHeader(join(dir, 'optimizer.safetensors'));
  for (const name of ['exp_avg', 'exp_avg_sq']) {
    const values = await readTensorF32(header.tensors.get(name)!);
    assert.ok(values.every(Number.isFinite), `${dir}: ${name}`);
  }
}

test('a huge learning rate stops the run at the step that diverged; nothing non-finite is written, and the message says what diverged', async () => {
  // the update overflows float32 at once: the weights after step 1 are Inf; before, the run exited 0 with them saved
  const inf = join(root, 'lr-1e39');
  const r = orpo(trainArgs(inf, ['--learning-rate', '1e39', '--max-steps', '1', '--save-steps', '0']));
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /training diverged at step 1: the weights after step 1 hold NaN\/Inf: model\.embed_tokens\.weight \(240 of 240 values NaN\/Inf\)/);
  assert.match(r.stderr, /No checkpoint in .* predates the divergence: start again with a lower learning_rate/);
  assert.ok(!existsSync(join(inf, 'model.safetensors')), 'no final model from diverged weights');
  assert.ok(!existsSync(join(inf, 'train_results.json')));

  // finite but huge weights after step 1: step 2's loss is NaN, and checkpoint-1 (finite) is named as the weights it came from
  const nan = join(root, 'lr-1e30');
  const n = orpo(trainArgs(nan, ['--learning-rate', '1e30', '--max-steps', '6', '--save-steps', '1']));
  assert.equal(n.code, 1, n.stderr);
  assert.match(n.stderr, /training diverged at step 2: the loss is NaN/);
  assert.match(n.stderr, /checkpoint-1 holds the finite weights the diverged step started from: resuming from there diverges again/);
  assert.deepEqual(checkpoints(nan), ['checkpoint-1']);
  await assertAllFinite(join(nan, 'checkpoint-1'));
  assert.ok(!existsSync(join(nan, 'model.safetensors')));
});

test('learning rate 1e6: the activations overflow, every gradient becomes exactly 0 and the run stops instead of "succeeding"', () => {
  const out = join(root, 'lr-1e6');
  const r = orpo(trainArgs(out, ['--learning-rate', '1e6', '--max-steps', '6', '--save-steps', '0']));
  // before: exit 0, a constant loss of ln(vocabulary) from step 2 on and a dead model saved as the result
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /training diverged at step 2: every gradient is exactly 0 while the loss is 2\.77\d*: the activations overflowed float32/);
  assert.ok(!existsSync(join(out, 'model.safetensors')));
});

test('a run that diverges after good steps names the last good checkpoint, which is intact and trains on', async () => {
  // warm-up from 0: step 1 moves nothing (lr 0), step 2 (lr 1e28) throws the weights far out, step 3's loss is NaN
  const out = join(root, 'warmup-diverges');
  const args = trainArgs(out, ['--learning-rate', '1e30', '--lr-scheduler-type', 'constant_with_warmup', '--warmup-steps', '100',
    '--max-steps', '6', '--save-steps', '1']);
  const r = orpo(args);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /training diverged at step 3: the loss is NaN/);
  const good = join(out, 'checkpoint-1');
  assert.ok(r.stderr.includes(`The last good checkpoint is ${good} (step 1, intact).`), r.stderr);
  assert.ok(r.stderr.includes(`orpo train --model ${good} --learning-rate <lower>`), r.stderr);
  assert.match(r.stderr, /checkpoint-2 holds the finite weights the diverged step started from/);
  for (const c of checkpoints(out)) await assertAllFinite(join(out, c));
  // as advised: its weights train on with a sane learning rate
  const again = join(root, 'from-last-good');
  const next = orpo(['train', '--model', good, '--dataset', data.train, '--output-dir', again, '--learning-rate', '1e-3', '--max-steps', '2',
    '--per-device-train-batch-size', '2', '--threads', '1', '--no-report']);
  assert.equal(next.code, 0, next.stderr);
  assert.ok((await loadModel(again)).params.every(Number.isFinite));
});

const tinyConfig = demoModelConfig({ hiddenSize: 16, layers: 1, heads: 2, intermediateSize: 32 });
const tinyPairs = (n: number): TokenPair[] => arithmeticTask(5, n, 1).train.map((p) => ({
  prompt: [1, ...demoEncode(p.prompt)], chosen: [...demoEncode(p.chosen), 2], rejected: [...demoEncode(p.rejected), 2],
}));
const config = (over: Partial<TrainConfig>): TrainConfig =>
  ({ ...defaultsOf(TRAIN_OPTIONS), model: 'm', dataset: 'd', output_dir: 'o', learning_rate: 1e-2, logging_steps: 1, ...over });

test('weights that turn NaN are caught when they would be saved: no checkpoint holds them, the tensor and the last good step are named', async () => {
  const model = createModel(tinyConfig, { seed: 2 });
  const saved: number[] = [];
  let steps = 0;
  const run = train(model, { train: tinyPairs(8), eval: null, padTokenId: 0 }, config({ max_steps: 5, per_device_train_batch_size: 2, save_steps: 1 }), {
    // the weights after step 2 hold a NaN before its checkpoint is written (before: checkpoint 2 was written with it)
    progress: () => {
      if (++steps === 2) model.param('model.norm.weight')[3] = NaN;
    },
    save: async (_kind, state) => void saved.push(state.global_step),
  });
  await assert.rejects(run, (e: Error) => e instanceof NonFiniteError && e.divergence === 'weights' && e.step === 2 && e.lastGoodStep === 1 &&
    /the weights after step 2 hold NaN\/Inf: model\.norm\.weight \(1 of 16 values NaN\/Inf\)/.test(e.message));
  assert.deepEqual(saved, [1]);
});

test('a checkpoint whose AdamW state holds NaN or a negative second moment, or whose weights hold NaN, is refused on resume', async () => {
  const out = join(root, 'corrupt');
  assert.equal(orpo(trainArgs(out, ['--learning-rate', '1e-3', '--max-steps', '2', '--save-steps', '1'])).code, 0);
  const ckpt = join(out, 'checkpoint-2');
  const optimizerFile = join(ckpt, 'optimizer.safetensors');
  const header = await readSafetensorsHeader(optimizerFile);
  const m = await readTensorF32(header.tensors.get('exp_avg')!);
  const v = await readTensorF32(header.tensors.get('exp_avg_sq')!);
  const rewrite = async (mm: Float32Array, vv: Float32Array): Promise<void> => writeSafetensors(optimizerFile, [
    { name: 'exp_avg', shape: [mm.length], data: mm }, { name: 'exp_avg_sq', shape: [vv.length], data: vv },
  ], { metadata: { step: '2' } });
  const resume = (): { code: number | null; stderr: string } => orpo(['train', '--resume', ckpt, '--max-steps', '3']);

  const negative = v.slice();
  negative[5] = -1e-3;
  await rewrite(m, negative);
  let r = resume();
  assert.equal(r.code, 1, r.stderr); // before: resumed with exit 0
  assert.match(r.stderr, /optimizer\.safetensors: corrupt AdamW state: exp_avg_sq \(1 of \d+ values negative\)/);

  const nan = m.slice();
  nan[0] = NaN;
  await rewrite(nan, v);
  r = resume();
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /optimizer\.safetensors: corrupt AdamW state: exp_avg \(1 of \d+ values NaN\/Inf\)/);

  await rewrite(m, v);
  const model = await loadModel(ckpt);
  model.param('lm_head.weight')[7] = Infinity;
  await saveModel(model, ckpt);
  r = resume();
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /checkpoint-2: .*'?lm_head\.weight'? .*(holds NaN or Inf|NaN\/Inf)/);
});

test('a checkpoint cut short while being deleted does not count as complete: --resume falls back to the newest complete one', () => {
  const out = join(root, 'torn-delete');
  assert.equal(orpo(trainArgs(out, ['--learning-rate', '1e-3', '--max-steps', '3', '--save-steps', '1'])).code, 0);
  // what a kill during the old recursive delete left: the folder with trainer_state.json alone
  for (const name of readdirSync(join(out, 'checkpoint-3'))) if (name !== 'trainer_state.json') rmSync(join(out, 'checkpoint-3', name));
  // named explicitly, it is refused with the reason instead of failing on a missing file
  const explicit = orpo(['train', '--resume', join(out, 'checkpoint-3')]);
  assert.equal(explicit.code, 1);
  assert.match(explicit.stderr, /--resume .*checkpoint-3: not a complete checkpoint: no readable checkpoint_complete\.json/);
  const r = orpo(['train', '--output-dir', out, '--resume', '--max-steps', '4']);
  // before: it resumed from checkpoint-3 and failed with "config.json not found"
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /skipping .*checkpoint-3: not a complete checkpoint \(no readable checkpoint_complete\.json/);
  assert.match(r.stderr, /resuming from .*checkpoint-2 \(step 2 of 3\)/);

  // a real kill while pruning: the marker goes first, so the half-deleted folder never counts, and a later prune removes it
  const pruned = join(root, 'killed-prune');
  const killed = orpo(trainArgs(pruned, ['--learning-rate', '1e-3', '--max-steps', '4', '--save-steps', '1', '--save-total-limit', '2']),
    { ORPO_TEST_KILL_DURING_DELETE: '1' });
  assert.equal(killed.signal, 'SIGKILL', killed.stderr);
  assert.deepEqual(checkpoints(pruned), ['checkpoint-1', 'checkpoint-2', 'checkpoint-3']);
  assert.ok(!existsSync(join(pruned, 'checkpoint-1', 'checkpoint_complete.json')));
  const again = orpo(['train', '--output-dir', pruned, '--resume']);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /resuming from .*checkpoint-3 \(step 3 of 4\)/);
  assert.deepEqual(checkpoints(pruned), ['checkpoint-3', 'checkpoint-4']);
});

test("temporaries of a killed save (model.safetensors.tmp-PID, .tmp-checkpoint-N-PID) are removed by the next run; a live writer's are kept", async () => {
  const out = join(root, 'leftovers');
  assert.equal(orpo(trainArgs(out, ['--learning-rate', '1e-3', '--max-steps', '2', '--save-steps', '1'])).code, 0);
  // a pid that certainly belonged to a process that has exited, and one that is alive
  const gone = spawnSync(process.execPath, ['-e', '0']).pid!;
  const alive = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  try {
    const dead = [`model.safetensors.tmp-${gone}`, `train_results.json.tmp-${gone}`, `tokenizer.json.tmp-${gone}`];
    for (const name of dead) writeFileSync(join(out, name), 'torn');
    mkdirSync(join(out, `.tmp-checkpoint-3-${gone}`));
    const live = `model.safetensors.tmp-${alive.pid}`;
    writeFileSync(join(out, live), 'being written');
    const r = orpo(['train', '--output-dir', out, '--resume', '--max-steps', '3']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /removed what a killed run left in/);
    const names = readdirSync(out);
    for (const name of [...dead, `.tmp-checkpoint-3-${gone}`]) assert.ok(!names.includes(name), `${name} was left behind`);
    assert.ok(names.includes(live), "a live process's temporary is not touched");
  } finally {
    alive.kill();
  }
});
