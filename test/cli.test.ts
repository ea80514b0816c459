// End to end: the `orpo` command on tiny generated model folders, as a user runs it (child processes).
// Resume is checked against an uninterrupted run, a SIGKILL during a save against the previous checkpoint,
// eval against the trainer's own evaluation, and the report against the charts it must hold.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeDemoData, writeDemoModelFolder } from '../src/cli/demo.js';
import { arithmeticTask } from '../src/train/demo-task.js';
import { loadModel } from '../src/io/hf-model.js';
import { loadTokenizer } from '../src/io/tokenizer-files.js';

const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'orpo-cli-'));
const modelDir = join(root, 'model');
let data: { train: string; eval: string };

after(() => rmSync(root, { recursive: true, force: true }));

before(async () => {
  await writeDemoModelFolder(modelDir, { hiddenSize: 16, layers: 1, heads: 2, intermediateSize: 32 }, 4);
  data = await writeDemoData(join(root, 'data'), arithmeticTask(9, 40, 8));
});

function orpo(args: string[], env: Record<string, string> = {}): { code: number | null; signal: string | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

const trainArgs = (out: string, extra: string[] = []): string[] => [
  'train', '--model', modelDir, '--dataset', data.train, '--eval-dataset', data.eval, '--output-dir', out,
  '--learning-rate', '5e-3', '--max-steps', '6', '--per-device-train-batch-size', '2', '--gradient-accumulation-steps', '2',
  '--logging-steps', '1', '--eval-steps', '3', '--save-steps', '2', '--threads', '1', '--lr-scheduler-type', 'cosine',
  '--warmup-steps', '1', ...extra,
];

const records = (dir: string): Record<string, number>[] =>
  readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
// timings differ between runs; everything else must not
const withoutTimings = (rs: Record<string, number>[]): Record<string, number>[] =>
  rs.map(({ tokens_per_second: _t, eval_runtime: _r, eval_samples_per_second: _s, eval_steps_per_second: _p, ...rest }) => rest);

test('help lists every command and option; unknown options and bad values are named', () => {
  const top = orpo(['--help']);
  assert.equal(top.code, 0);
  for (const c of ['demo', 'train', 'eval', 'generate', 'data']) assert.match(top.stdout, new RegExp(`\\n  ${c} `));
  const help = orpo(['train', '--help']);
  assert.equal(help.code, 0);
  for (const flag of ['--beta <number>', '--learning-rate', '--lr-scheduler-type <linear|cosine|constant|constant_with_warmup|inverse_sqrt>', '--save-total-limit', '--resume', '--config']) {
    assert.ok(help.stdout.includes(flag), `train --help lacks ${flag}`);
  }
  for (const cmd of ['eval', 'generate', 'demo']) assert.equal(orpo([cmd, '--help']).code, 0);

  const unknown = orpo(['train', '--lerning-rate', '1e-5']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown option '--lerning-rate' \(did you mean --learning-rate\?\)/);
  const bad = orpo(['train', '--model', modelDir, '--beta', 'high']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /invalid value "high" for 'beta': expected number/);
  const missing = orpo(['train', '--dataset', data.train, '--output-dir', join(root, 'x')]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /missing required option 'model'/);
  assert.match(orpo(['frobnicate']).stderr, /unknown command 'frobnicate'/);
  assert.match(orpo(['trian']).stderr, /unknown command 'trian' \(did you mean train\?\)/);
  const version = orpo(['--version']);
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^orpo-ts \d+\.\d+\.\d+\n$/);
  // one prefix: the command's, not the command's twice
  assert.match(orpo(['train', '--learning-rate', 'abc']).stderr, /^orpo train: error: --learning-rate: invalid value "abc"/);
  assert.match(orpo(['eval', '--help']).stdout, /--dataset <path> +preference data to evaluate on/);
  // options that would be silently ignored are refused
  const noEval = orpo(['train', '--model', modelDir, '--dataset', data.train, '--output-dir', join(root, 'x-eval'), '--eval-steps', '2']);
  assert.equal(noEval.code, 2);
  assert.match(noEval.stderr, /eval_steps needs held-out pairs to evaluate: give --eval-dataset FILE or --eval-split-ratio/);
  const sysNoChat = orpo(['generate', '--model', modelDir, '--prompt', '12+', '--system', 'be brief']);
  assert.equal(sysNoChat.code, 2);
  assert.match(sysNoChat.stderr, /--system is a chat message: add --chat/);

  const yaml = join(root, 'bad.yaml');
  writeFileSync(yaml, `model: ${modelDir}\nlearning_rate: fast\n`);
  const badFile = orpo(['train', '--config', yaml]);
  assert.equal(badFile.code, 2);
  assert.match(badFile.stderr, /bad\.yaml: learning_rate: invalid value "fast"/);
  writeFileSync(yaml, 'warmup_step: 3\n');
  assert.match(orpo(['train', '--config', yaml]).stderr, /bad\.yaml: unknown option 'warmup_step' \(did you mean warmup_steps\?\)/);
});

test('a config file gives the options, flags override it', () => {
  const out = join(root, 'from-config');
  const yaml = join(root, 'train.yaml');
  writeFileSync(yaml, [`model: ${modelDir}`, `dataset: ${data.train}`, `output_dir: ${out}`, 'max_steps: 2', 'beta: 0.3',
    'per_device_train_batch_size: 4', 'save_steps: 1', 'report: false', 'threads: 1'].join('\n'));
  const r = orpo(['train', '--config', yaml, '--beta', '0.7']);
  assert.equal(r.code, 0, r.stderr);
  const args = JSON.parse(readFileSync(join(out, 'checkpoint-1', 'training_args.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(args['beta'], 0.7);
  assert.equal(args['per_device_train_batch_size'], 4);
  assert.equal(args['max_steps'], 2);
  assert.ok(!existsSync(join(out, 'report.html')));
});

test('kill during a save keeps the previous checkpoint; --resume then equals an uninterrupted run', async () => {
  const straight = join(root, 'straight');
  const a = orpo(trainArgs(straight));
  assert.equal(a.code, 0, a.stderr);
  const want = records(straight);
  assert.equal(want.filter((r) => 'loss' in r).length, 6);
  assert.equal(want.filter((r) => 'eval_loss' in r).length, 3); // steps 0, 3, 6

  const resumed = join(root, 'resumed');
  const killed = orpo(trainArgs(resumed), { ORPO_TEST_KILL_DURING_SAVE: '4' });
  assert.equal(killed.signal, 'SIGKILL');
  const names = readdirSync(resumed);
  assert.ok(names.includes('checkpoint-2'), names.join(' '));
  assert.ok(!names.includes('checkpoint-4'), 'the torn checkpoint must not look complete');
  assert.ok(names.some((n) => n.startsWith('.tmp-checkpoint-4')), 'the kill happened mid-save');
  // the previous checkpoint is a complete model folder
  const ckpt = await loadModel(join(resumed, 'checkpoint-2'));
  assert.ok(ckpt.params.every(Number.isFinite));
  assert.equal((await loadTokenizer(join(resumed, 'checkpoint-2'))).eosTokenId, 2);

  const r = orpo([...trainArgs(resumed), '--resume']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /resuming from .*checkpoint-2 \(step 2 of 6\)/);
  assert.doesNotMatch(r.stderr, /warning/); // same options: nothing to warn about
  assert.ok(!readdirSync(resumed).some((n) => n.startsWith('.tmp-')), 'stale temporary folder removed');
  assert.deepEqual(withoutTimings(records(resumed)), withoutTimings(want));
  const m1 = await loadModel(straight);
  const m2 = await loadModel(resumed);
  assert.deepEqual(m2.params, m1.params);
  // the checkpoint written on the resumed path equals the uninterrupted one too
  assert.deepEqual((await loadModel(join(resumed, 'checkpoint-4'))).params, (await loadModel(join(straight, 'checkpoint-4'))).params);
});

test('LoRA (with dropout): kill mid-save and --resume equal an uninterrupted run; the output is a PEFT adapter', () => {
  const lora = ['--lora-r', '4', '--lora-dropout', '0.2', '--no-report'];
  const straight = join(root, 'lora-straight');
  const a = orpo(trainArgs(straight, lora));
  assert.equal(a.code, 0, a.stderr);
  assert.match(a.stderr, /LoRA r=4 on \d+ modules/);
  assert.ok(existsSync(join(straight, 'adapter_config.json')) && existsSync(join(straight, 'adapter_model.safetensors')));
  assert.ok(!existsSync(join(straight, 'model.safetensors')), 'under LoRA the base weights are not copied');
  const resumed = join(root, 'lora-resumed');
  assert.equal(orpo(trainArgs(resumed, lora), { ORPO_TEST_KILL_DURING_SAVE: '4' }).signal, 'SIGKILL');
  const r = orpo([...trainArgs(resumed, lora), '--resume']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(withoutTimings(records(resumed)), withoutTimings(records(straight)));
  assert.deepEqual(readFileSync(join(resumed, 'adapter_model.safetensors')), readFileSync(join(straight, 'adapter_model.safetensors')));
  // eval and generate take the adapter folder: base model + adapter, as the trainer evaluated it
  const ev = orpo(['eval', '--model', straight, '--dataset', data.eval, '--json', '--threads', '1']);
  assert.equal(ev.code, 0, ev.stderr);
  const last = records(straight).filter((x) => 'eval_loss' in x).at(-1)!;
  const got = (JSON.parse(ev.stdout) as Record<string, number>)['eval_loss']!;
  assert.ok(Math.abs(got - last['eval_loss']!) <= 1e-6 * Math.abs(last['eval_loss']!), `${got} vs ${last['eval_loss']}`);
  assert.equal(orpo(['generate', '--model', straight, '--prompt', '12+07=', '--max-new-tokens', '3']).code, 0);
});

test('eval and generate work on the trained output; the report holds the charts', () => {
  const out = join(root, 'straight');
  if (!existsSync(join(out, 'report.html'))) assert.equal(orpo(trainArgs(out)).code, 0); // when run alone
  const ev = orpo(['eval', '--model', out, '--dataset', data.eval, '--json', '--threads', '1']);
  assert.equal(ev.code, 0, ev.stderr);
  const metrics = JSON.parse(ev.stdout) as Record<string, number>;
  const last = records(out).filter((r) => 'eval_loss' in r).at(-1)!;
  for (const k of ['eval_loss', 'eval_nll_loss', 'eval_rewards/accuracies', 'eval_rewards/margins', 'eval_logps/chosen']) {
    assert.ok(Math.abs(metrics[k]! - last[k]!) <= 1e-6 * Math.max(1, Math.abs(last[k]!)), `${k}: eval ${metrics[k]} vs trainer ${last[k]}`);
  }
  assert.equal(metrics['pairs'], 8);
  // transformers' evaluate() timing names, and the command is not silent while it works
  assert.ok(metrics['eval_runtime']! > 0 && metrics['eval_samples_per_second']! > 0 && metrics['eval_steps_per_second']! > 0, ev.stdout);
  assert.match(ev.stderr, /evaluating 8 pairs/);

  const gen = (extra: string[]): { tokens: number[]; completion: string; stop_reason: string } => {
    const g = orpo(['generate', '--model', out, '--prompt', '12+07=', '--json', '--max-new-tokens', '6', ...extra]);
    assert.equal(g.code, 0, g.stderr);
    return JSON.parse(g.stdout) as { tokens: number[]; completion: string; stop_reason: string };
  };
  const greedy = gen([]);
  assert.ok(greedy.tokens.length >= 1 && greedy.tokens.length <= 6);
  assert.ok(greedy.stop_reason === 'eos' ? greedy.tokens.at(-1) === 2 : greedy.tokens.length === 6);
  assert.deepEqual(gen([]), greedy);
  const sampled = gen(['--temperature', '1.5', '--seed', '3']);
  assert.deepEqual(gen(['--temperature', '1.5', '--seed', '3']), sampled);
  const stream = orpo(['generate', '--model', out, '--prompt', '12+07=', '--max-new-tokens', '6']);
  assert.equal(stream.stdout.trim(), greedy.completion.trim());
  const chat = orpo(['generate', '--model', out, '--prompt', 'hi', '--chat']);
  assert.equal(chat.code, 2);
  // advice for generate, not for datasets
  assert.match(chat.stderr, /--chat renders the prompt with the model's chat template.*has none.*drop --chat/);
  assert.doesNotMatch(chat.stderr, /conversational rows/);
  // with a chat template, --chat renders the user turn and the generation prompt before generating
  const chatDir = join(root, 'chat-model');
  cpSync(out, chatDir, { recursive: true });
  const tokConfig = JSON.parse(readFileSync(join(chatDir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  tokConfig['chat_template'] = '{% for m in messages %}{{ m.content }}{% endfor %}{% if add_generation_prompt %}={% endif %}';
  writeFileSync(join(chatDir, 'tokenizer_config.json'), JSON.stringify(tokConfig));
  const viaChat = orpo(['generate', '--model', chatDir, '--prompt', '12+07', '--chat', '--json', '--max-new-tokens', '6']);
  assert.equal(viaChat.code, 0, viaChat.stderr);
  assert.deepEqual((JSON.parse(viaChat.stdout) as { tokens: number[] }).tokens, greedy.tokens);

  const html = readFileSync(join(out, 'report.html'), 'utf8');
  for (const id of ['loss', 'nll_loss', 'log_odds_ratio', 'logps', 'margins', 'accuracies', 'learning_rate', 'grad_norm']) {
    assert.match(html, new RegExp(`<figure id="${id}"><svg`), `report.html lacks the ${id} chart`);
    const svg = readFileSync(join(out, 'charts', `${id}.svg`), 'utf8');
    assert.match(svg, /^<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.match(svg, /<path/); // drawn lines, not an empty frame
  }
  assert.doesNotMatch(html, /<script|<link|src="http|@import/, 'report.html must be self-contained');
  const summary = JSON.parse(readFileSync(join(out, 'train_results.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(summary['global_step'], 6);
});

test('--bf16 and --share-prompt false: training and eval run and the options are recorded; two rows give the shared-prompt losses', () => {
  const shared = join(root, 'float32-shared');
  const twoRows = join(root, 'float32-two-rows');
  const bf16 = join(root, 'bf16');
  assert.equal(orpo(trainArgs(shared, ['--no-report'])).code, 0);
  const r2 = orpo(trainArgs(twoRows, ['--no-report', '--share-prompt', 'false']));
  assert.equal(r2.code, 0, r2.stderr);
  const rb = orpo(trainArgs(bf16, ['--no-report', '--bf16']));
  assert.equal(rb.code, 0, rb.stderr);
  const args = (dir: string): Record<string, unknown> => JSON.parse(readFileSync(join(dir, 'checkpoint-4', 'training_args.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(args(twoRows)['share_prompt'], false);
  assert.equal(args(bf16)['bf16'], true);
  // the two layouts are one computation: the same losses to float32 rounding
  const [a, b] = [records(shared), records(twoRows)];
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) {
    if (a[i]!['loss'] === undefined) continue;
    assert.ok(Math.abs(a[i]!['loss']! - b[i]!['loss']!) < 1e-4 * Math.abs(b[i]!['loss']!), `record ${i}: ${a[i]!['loss']} vs ${b[i]!['loss']}`);
  }
  // bf16 products: close to float32, not equal
  const c = records(bf16);
  const last = (rs: Record<string, number>[]): number => rs.filter((x) => x['loss'] !== undefined).pop()!['loss']!;
  assert.ok(last(c) !== last(a) && Math.abs(last(c) - last(a)) < 0.05 * last(a), `${last(c)} vs ${last(a)}`);
  const ev = orpo(['eval', '--model', bf16, '--dataset', data.eval, '--json', '--bf16', '--threads', '1']);
  assert.equal(ev.code, 0, ev.stderr);
  assert.ok(Number.isFinite((JSON.parse(ev.stdout) as Record<string, number>)['eval_loss']));
});

test('save_total_limit keeps the newest checkpoints', () => {
  const out = join(root, 'limited');
  const r = orpo(['train', '--model', modelDir, '--dataset', data.train, '--output-dir', out, '--max-steps', '5',
    '--save-steps', '1', '--save-total-limit', '2', '--no-report', '--threads', '1']);
  assert.equal(r.code, 0, r.stderr);
  // the last step is checkpointed too (as transformers' Trainer saves at the end), so the newest two are 4 and 5
  assert.deepEqual(readdirSync(out).filter((n) => n.startsWith('checkpoint-')).sort(), ['checkpoint-4', 'checkpoint-5']);
});

test('the last step is checkpointed: a resume with more steps continues from it, not from an earlier checkpoint', () => {
  const out = join(root, 'last-step');
  const base = ['train', '--model', modelDir, '--dataset', data.train, '--output-dir', out, '--save-steps', '2', '--no-report', '--threads', '1',
    '--per-device-train-batch-size', '2'];
  const r = orpo([...base, '--max-steps', '3']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(readdirSync(out).filter((n) => n.startsWith('checkpoint-')).sort(), ['checkpoint-2', 'checkpoint-3']);
  const more = orpo(['train', '--output-dir', out, '--resume', '--max-steps', '4']);
  assert.equal(more.code, 0, more.stderr);
  assert.match(more.stderr, /resuming from .*checkpoint-3 \(step 3 of 3\)/);
  // logged at the last step of each run (logging_steps 10): step 3 kept from the first run, step 4 new; resuming from
  // checkpoint-2 would have redone step 3 and logged only step 4
  assert.equal(records(out).filter((x) => 'loss' in x).map((x) => x['step']).join(','), '3,4');
  // --resume CHECKPOINT alone is enough: the options come from the checkpoint, the run's folder is its parent
  const alone = orpo(['train', '--resume', join(out, 'checkpoint-2')]);
  assert.equal(alone.code, 0, alone.stderr);
  assert.match(alone.stderr, /resuming from .*checkpoint-2 \(step 2 of 3\)/);
  assert.match(alone.stderr, /saved .*last-step.checkpoint-3/);
  assert.equal(records(out).filter((x) => 'loss' in x).map((x) => x['step']).join(','), '3');
});

/** Runs the CLI and sends SIGINT once `steps` training lines have been printed. */
async function interruptAfter(args: string[], steps: number): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let sent = false;
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (!sent && (stderr.match(/^step \d+/gm) ?? []).length >= steps) {
      sent = true;
      child.kill('SIGINT');
    }
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { code, stderr };
}

test('Ctrl-C saves a checkpoint and exits; --resume continues from it', async () => {
  const out = join(root, 'interrupted');
  const args = ['train', '--model', modelDir, '--dataset', data.train, '--output-dir', out, '--max-steps', '100000',
    '--logging-steps', '1', '--save-steps', '0', '--no-report', '--threads', '1', '--per-device-train-batch-size', '2'];
  const first = await interruptAfter(args, 3);
  assert.equal(first.code, 130, first.stderr);
  const step = Number(/interrupted at step (\d+); continue with --resume/.exec(first.stderr)?.[1]);
  assert.ok(step >= 3, first.stderr);
  assert.ok(existsSync(join(out, `checkpoint-${step}`, 'trainer_state.json')));
  // the checkpoint's own options suffice: only the output folder and --resume are given
  const second = await interruptAfter(['train', '--output-dir', out, '--resume', '--seed', '7', '--threads', '1'], 2);
  assert.match(second.stderr, /warning: seed was 42 in the run that wrote .* but is 7 now/);
  assert.equal(second.code, 130, second.stderr);
  assert.match(second.stderr, new RegExp(`resuming from .*checkpoint-${step} \\(step ${step} of 100000\\)`));
  // the log continues where the checkpoint left off, one record per step, none lost or repeated
  const steps = records(out).filter((x) => 'loss' in x).map((x) => x['step']);
  assert.deepEqual(steps, Array.from({ length: steps.length }, (_, i) => i + 1));
  assert.ok(steps.length >= step + 2);
});

test('orpo demo --json: a short run prints before/after metrics and leaves a usable model folder', () => {
  const out = join(root, 'demo-short');
  const r = orpo(['demo', '--json', '--output-dir', out, '--max-steps', '4', '--train-pairs', '40', '--eval-pairs', '10', '--threads', '1']);
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout) as { steps: number; before: Record<string, number>; after: Record<string, number> };
  assert.equal(s.steps, 4);
  for (const side of [s.before, s.after]) {
    for (const k of ['eval_rewards/accuracies', 'eval_rewards/margins', 'eval_loss', 'generation_accuracy']) assert.ok(Number.isFinite(side[k]), k);
  }
  assert.ok(s.after['eval_loss']! < s.before['eval_loss']!, 'four steps lower the held-out loss');
  assert.equal(orpo(['generate', '--model', out, '--prompt', '12+07=', '--json', '--max-new-tokens', '4']).code, 0);
  assert.ok(existsSync(join(out, 'report.html')));
});

test('orpo demo (default settings) reaches held-out accuracy >= 0.9 with positive margins', async (t) => {
  const { getKernels } = await import('../src/backend/index.js');
  if (getKernels().name !== 'native') {
    t.skip('the native backend is not built here; the full demo takes minutes on the TypeScript backend');
    return;
  }
  const r = orpo(['demo', '--json', '--output-dir', join(root, 'demo-full')]);
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout) as { after: Record<string, number>; before: Record<string, number> };
  assert.ok(s.after['eval_rewards/accuracies']! >= 0.9, `held-out accuracy ${s.after['eval_rewards/accuracies']}`);
  assert.ok(s.after['eval_rewards/margins']! > 0, `margin ${s.after['eval_rewards/margins']}`);
  assert.ok(s.before['eval_rewards/accuracies']! < 0.7, 'the untrained model is near chance');
});

test('--max-length alone works in train, eval and data stats; a prompt limit at or above it gets one message in all three', () => {
  const out = join(root, 'short');
  const r = orpo(['train', '--model', modelDir, '--dataset', data.train, '--output-dir', out, '--max-length', '12', '--max-steps', '2',
    '--per-device-train-batch-size', '2', '--no-report', '--threads', '1']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(orpo(['eval', '--model', out, '--dataset', data.eval, '--max-length', '12', '--json']).code, 0);
  assert.equal(orpo(['data', 'stats', '--model', modelDir, '--dataset', data.train, '--max-length', '12']).code, 0);
  const message = /max_prompt_length \(12\) must be an integer in \[1, max_length\) so responses keep at least one token; max_length is 12: set --max-prompt-length below 12, or leave it unset/;
  for (const args of [
    ['train', '--model', modelDir, '--dataset', data.train, '--output-dir', join(root, 'short2')],
    ['eval', '--model', modelDir, '--dataset', data.eval],
    ['data', 'stats', '--model', modelDir, '--dataset', data.train],
  ]) {
    const bad = orpo([...args, '--max-length', '12', '--max-prompt-length', '12']);
    assert.notEqual(bad.code, 0, args[0]);
    assert.match(bad.stderr, message, `${args[0]}: ${bad.stderr}`);
  }
});

test('the report shows counts exactly and measurements to 6 digits', async () => {
  const { formatSummaryValue } = await import('../src/cli/train.js');
  assert.equal(formatSummaryValue(9780928), '9780928');
  assert.equal(formatSummaryValue(0.123456789), '0.123457');
  assert.equal(formatSummaryValue('runs/x'), 'runs/x');
});

test('--system-column reaches the data in train and eval as in data stats (a field the rows lack is named by all three)', () => {
  for (const args of [
    ['train', '--model', modelDir, '--dataset', data.train, '--output-dir', join(root, 'sys'), '--max-steps', '1', '--no-report'],
    ['eval', '--model', modelDir, '--dataset', data.eval],
    ['data', 'stats', '--model', modelDir, '--dataset', data.train],
  ]) {
    const r = orpo([...args, '--system-column', 'persona']);
    assert.notEqual(r.code, 0, args[0]);
    assert.doesNotMatch(r.stderr, /unknown option/, args[0]);
    assert.match(r.stderr, /persona/, `${args[0]}: ${r.stderr}`);
    assert.match(r.stderr, /--system-column/, `${args[0]}: ${r.stderr}`);
  }
});

test("orpo eval on a run's folder uses the run's settings (saying so), and flags override them", () => {
  const out = join(root, 'settings');
  const r = orpo(['train', '--model', modelDir, '--dataset', data.train, '--eval-dataset', data.eval, '--output-dir', out, '--max-steps', '3',
    '--per-device-train-batch-size', '2', '--beta', '0.7', '--sft-scope', 'response', '--max-length', '14', '--no-report', '--threads', '1']);
  assert.equal(r.code, 0, r.stderr);
  const last = records(out).filter((x) => 'eval_loss' in x).pop()!;
  const ev = orpo(['eval', '--model', out, '--dataset', data.eval, '--json']);
  assert.equal(ev.code, 0, ev.stderr);
  assert.match(ev.stderr, /using the run's settings from .*training_args\.json \(beta 0\.7, sft_scope response, max_length 14\); flags override them/);
  const m = JSON.parse(ev.stdout) as Record<string, number>;
  assert.ok(Math.abs(m['eval_loss']! - last['eval_loss']!) <= 1e-6 * Math.abs(last['eval_loss']!), `${m['eval_loss']} vs the run's ${last['eval_loss']}`);
  const other = JSON.parse(orpo(['eval', '--model', out, '--dataset', data.eval, '--json', '--beta', '0.1']).stdout) as Record<string, number>;
  assert.notEqual(other['eval_loss'], m['eval_loss']);
});
