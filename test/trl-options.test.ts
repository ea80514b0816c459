// TRL's and transformers' option names (issue 14): each is accepted with its TRL meaning or refused with the reason,
// never "unknown option"; Object.prototype's names are unknown options, not options (issue 13).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkpointInterval, evaluationPlan, TRAIN_ALIASES, TRAIN_OPTIONS, validateTrainConfig, type TrainConfig } from '../src/train/config.js';
import { formatHelp, OptionError, resolveOptions } from '../src/train/options.js';
import { parseArgv } from '../src/cli/args.js';

type Layer = { source: string; values: Record<string, unknown>; flagStyle?: boolean };
const resolve = (...layers: Layer[]): TrainConfig => resolveOptions(TRAIN_OPTIONS, layers, TRAIN_ALIASES);
const flags = (argv: string[]): Layer => ({ source: 'orpo train', values: parseArgv(argv, TRAIN_OPTIONS, { aliases: TRAIN_ALIASES }).flags, flagStyle: true });
const file = (values: Record<string, unknown>): Layer => ({ source: 'trl.yaml', values });
const refused = (fn: () => unknown, re: RegExp): void =>
  assert.throws(fn, (e: Error) => e instanceof OptionError && re.test(e.message) && !/unknown option/.test(e.message), 'expected a reason, not "unknown"');

test('every TRL name the issue lists is known: renamed, accepted or refused with a reason', () => {
  const names = ['eval_strategy', 'save_strategy', 'report_to', 'resume_from_checkpoint', 'model_name_or_path', 'dataset_name',
    'use_peft', 'torch_dtype', 'logging_first_step', 'load_best_model_at_end', 'eval_on_start', 'save_only_model', 'run_name'];
  for (const name of names) assert.ok(name in TRAIN_OPTIONS || name in TRAIN_ALIASES, name);
  const help = formatHelp(TRAIN_OPTIONS, 100, TRAIN_ALIASES);
  for (const name of names) assert.match(help, new RegExp(`--${name.replace(/_/g, '-')}\\b`), name);
});

test('renames: model_name_or_path, dataset_name, resume_from_checkpoint, evaluation_strategy', () => {
  const c = resolve(file({ model_name_or_path: 'qwen', dataset_name: 'data.jsonl', resume_from_checkpoint: true, evaluation_strategy: 'no' }));
  assert.equal(c.model, 'qwen');
  assert.equal(c.dataset, 'data.jsonl');
  assert.equal(c.resume, 'latest');
  assert.equal(c.eval_strategy, 'no');
  assert.equal(resolve(flags(['--resume-from-checkpoint', 'out/checkpoint-20'])).resume, 'out/checkpoint-20');
  assert.equal(resolve(flags(['--resume-from-checkpoint'])).resume, 'latest');
  // a flag overrides a file, whatever name either uses
  assert.equal(resolve(file({ model_name_or_path: 'a' }), flags(['--model', 'b'])).model, 'b');
});

test('use_peft: LoRA at TRL\'s default rank 16 unless lora_r is given anywhere', () => {
  assert.equal(resolve(flags(['--use-peft'])).lora_r, 16);
  assert.equal(resolve(file({ use_peft: true })).lora_r, 16);
  assert.equal(resolve(file({ lora_r: 8 }), flags(['--use-peft'])).lora_r, 8);
  assert.equal(resolve(file({ use_peft: true }), flags(['--lora-r', '4'])).lora_r, 4);
  assert.equal(resolve(file({ use_peft: false })).lora_r, null);
});

test('names that cannot mean here what they mean in TRL are refused with the reason; their harmless values pass', () => {
  refused(() => resolve(file({ report_to: 'wandb' })), /trl\.yaml: report_to.*metrics\.jsonl/);
  refused(() => resolve(file({ save_only_model: true })), /resume/);
  refused(() => resolve(file({ load_best_model_at_end: true })), /checkpoint/);
  const c = resolve(file({ report_to: 'none', torch_dtype: 'auto', save_only_model: false, load_best_model_at_end: false }));
  assert.equal(c.report, true);
});

test('torch_dtype: float32, auto, or bfloat16 for a LoRA base; bfloat16 without LoRA is refused with what to do', () => {
  const base = { ...resolve(), model: 'm', dataset: 'd', output_dir: 'o' };
  assert.equal(resolve().torch_dtype, 'float32');
  assert.equal(resolve(flags(['--torch-dtype', 'bfloat16', '--lora-r', '4'])).torch_dtype, 'bfloat16');
  assert.throws(() => validateTrainConfig({ ...base, torch_dtype: 'bfloat16' }),
    (e: Error) => e instanceof OptionError && /torch_dtype bfloat16.*--lora-r.*--bf16/.test(e.message));
  validateTrainConfig({ ...base, torch_dtype: 'bfloat16', lora_r: 4 });
  validateTrainConfig({ ...base, torch_dtype: 'auto' });
  refused(() => resolve(flags(['--torch-dtype', 'float16'])), /float16/);
});

test('eval_strategy / save_strategy / eval_on_start follow transformers and clash loudly', () => {
  const base = { ...resolve(), model: 'm', dataset: 'd', output_dir: 'o' };
  assert.deepEqual(evaluationPlan({ ...base }, 50), { atStart: true, every: 0, atEnd: true });
  assert.deepEqual(evaluationPlan({ ...base, eval_steps: 20 }, 50), { atStart: true, every: 20, atEnd: true });
  assert.deepEqual(evaluationPlan({ ...base, eval_strategy: 'steps', logging_steps: 5 }, 50), { atStart: true, every: 5, atEnd: true });
  assert.deepEqual(evaluationPlan({ ...base, eval_strategy: 'epoch', eval_on_start: false }, 50), { atStart: false, every: 50, atEnd: true });
  assert.deepEqual(evaluationPlan({ ...base, eval_strategy: 'no' }, 50), { atStart: false, every: 0, atEnd: false });
  assert.equal(checkpointInterval({ ...base, save_strategy: 'no' }, 50), 0);
  assert.equal(checkpointInterval({ ...base, save_strategy: 'epoch' }, 50), 50);
  assert.equal(checkpointInterval({ ...base, save_steps: 30 }, 50), 30);
  assert.throws(() => validateTrainConfig({ ...base, eval_strategy: 'steps' }), /eval_strategy steps needs held-out pairs/);
  assert.throws(() => validateTrainConfig({ ...base, eval_dataset: 'e', eval_strategy: 'epoch', eval_steps: 10 }), /eval_steps.*eval_strategy epoch/);
  validateTrainConfig({ ...base, eval_dataset: 'e', eval_strategy: 'epoch' });
});

test("Object.prototype's names are unknown options, in flags and in files", () => {
  for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
    assert.throws(() => parseArgv([`--${name}`, '7'], TRAIN_OPTIONS, { aliases: TRAIN_ALIASES }), new RegExp(`unknown option '--${name}'`));
    const values = JSON.parse(`{"${name}": 7}`) as Record<string, unknown>;
    assert.throws(() => resolve(file(values)), new RegExp(`trl\\.yaml: unknown option '${name}'`));
  }
  // a real option given twice is still "given twice"
  assert.throws(() => parseArgv(['--beta', '1', '--beta', '2'], TRAIN_OPTIONS), /given twice/);
});

test('the trainer follows eval_strategy, eval_on_start, save_strategy and logging_first_step', async () => {
  const { train } = await import('../src/train/trainer.js');
  const { createModel } = await import('../src/model/create.js');
  const { arithmeticTask, demoEncode, demoModelConfig } = await import('../src/train/demo-task.js');
  const task = arithmeticTask(5, 12, 4);
  const enc = (p: { prompt: string; chosen: string; rejected: string }) => ({
    prompt: [1, ...demoEncode(p.prompt)], chosen: [...demoEncode(p.chosen), 2], rejected: [...demoEncode(p.rejected), 2],
  });
  const data = { train: task.train.map(enc), eval: task.eval.map(enc), padTokenId: 0 };
  // 12 pairs at 4 per step: 3 steps an epoch; 2 epochs = 6 steps
  const run = async (over: Partial<TrainConfig>): Promise<{ evals: number[]; logs: number[]; saves: string[] }> => {
    const c: TrainConfig = { ...resolve(), model: 'm', dataset: 'd', output_dir: 'o', eval_dataset: 'e', learning_rate: 1e-3,
      per_device_train_batch_size: 4, num_train_epochs: 2, logging_steps: 4, save_steps: 4, ...over };
    validateTrainConfig(c);
    const evals: number[] = [];
    const logs: number[] = [];
    const saves: string[] = [];
    await train(createModel(demoModelConfig({ hiddenSize: 16, layers: 1, heads: 2, intermediateSize: 32 }), { seed: 2 }), data, c, {
      log: (r) => (('eval_loss' in r) ? evals : logs).push(r.step as number),
      save: async (kind, state) => { saves.push(`${kind}@${state.global_step}`); },
    });
    return { evals, logs, saves };
  };
  const plain = await run({});
  assert.deepEqual(plain.evals, [0, 6]);
  assert.deepEqual(plain.logs, [4, 6]);
  assert.deepEqual(plain.saves, ['checkpoint@4', 'checkpoint@6', 'final@6']);
  assert.deepEqual((await run({ eval_strategy: 'no' })).evals, []);
  assert.deepEqual((await run({ eval_strategy: 'epoch', eval_on_start: false })).evals, [3, 6]);
  assert.deepEqual((await run({ eval_strategy: 'steps', eval_steps: 2 })).evals, [0, 2, 4, 6]);
  assert.deepEqual((await run({ logging_first_step: true })).logs, [1, 4, 6]);
  assert.deepEqual((await run({ save_strategy: 'no' })).saves, ['final@6']);
  assert.deepEqual((await run({ save_strategy: 'epoch' })).saves, ['checkpoint@3', 'checkpoint@6', 'final@6']);
});
