// `orpo demo`: the whole tool on a task with nothing to download. Builds a small Llama and a character-level
// tokenizer as a real model folder, writes an arithmetic preference dataset (chosen = the right sum,
// rejected = a near miss), trains with ORPO through the same code path as `orpo train`, and prints held-out
// preference accuracy and margins before and after, plus greedy generations checked against the true sums.

import { evalName, METRIC as M, type MetricName } from '../loss/metric-names.js';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { saveModel } from '../io/hf-model.js';
import { createModel } from '../model/create.js';
import type { CausalLM } from '../model/types.js';
import type { DecoderBase } from '../model/base.js';
import type { Tokenizer } from '../data/tokenizer.js';
import { TRAIN_OPTIONS, type TrainConfig } from '../train/config.js';
import {
  arithmeticTask, checkAnswer, demoModelConfig, demoTokenizerFiles, type DemoModelSize, type TextPair,
} from '../train/demo-task.js';
import { defaultsOf, withDefault, type OptionTable } from '../train/options.js';
import { resolveCommandOptions } from './args.js';
import { encodePrompt } from '../data/tokenize.js';
import { generateText } from './generate.js';
import { runTraining } from './train.js';

export interface DemoConfig {
  output_dir: string;
  json: boolean;
  seed: number;
  max_steps: number;
  learning_rate: number;
  beta: number;
  per_device_train_batch_size: number;
  train_pairs: number;
  eval_pairs: number;
  hidden_size: number;
  num_hidden_layers: number;
  threads: number | null;
  backend: 'js' | 'native' | 'webgpu' | null;
}

export const DEMO_OPTIONS: OptionTable<DemoConfig> = {
  output_dir: { type: 'path', default: 'orpo-demo', doc: 'where the base model, data, trained model and report.html go' },
  json: { type: 'bool', default: false, doc: 'print only the final metrics as one JSON object' },
  seed: { type: 'int', default: 1, min: 0, doc: 'seed of the task, the initial weights and the data order' },
  max_steps: { type: 'int', default: 3000, min: 1, doc: 'optimizer steps' },
  learning_rate: { type: 'float', default: 3e-3, min: 0, minExclusive: true, symbol: 'η', doc: 'peak learning rate (linear decay after 5% warmup)' },
  beta: withDefault(TRAIN_OPTIONS.beta, 0.5),
  per_device_train_batch_size: withDefault(TRAIN_OPTIONS.per_device_train_batch_size, 16),
  train_pairs: { type: 'int', default: 3000, min: 1, max: 4500, doc: 'training problems' },
  eval_pairs: { type: 'int', default: 200, min: 1, max: 500, doc: 'held-out problems (never seen in training)' },
  hidden_size: { type: 'int', default: 64, min: 8, doc: 'model width (heads of 16 dimensions)' },
  num_hidden_layers: { type: 'int', default: 2, min: 1, doc: 'transformer layers' },
  threads: TRAIN_OPTIONS.threads,
  backend: TRAIN_OPTIONS.backend,
};

const USAGE = `Usage: orpo demo [--json] [--output-dir DIR] [options]

Trains a small model with ORPO on generated two-digit additions like 12+07= (chosen = the right sum 019, rejected = a near
miss such as 019 -> 018, 029 or 091) and shows held-out preference accuracy before and after.`;

const toJsonl = (rows: readonly TextPair[]): string => rows.map((r) => `${JSON.stringify(r)}\n`).join('');

interface GenerationCheck {
  correct: number;
  total: number;
  samples: string[];
}

/** Greedy answers to held-out prompts, checked against the true sums. */
function checkGenerations(model: DecoderBase, tokenizer: Tokenizer, pairs: readonly TextPair[], shown: number): GenerationCheck {
  let correct = 0;
  const samples: string[] = [];
  for (const [i, p] of pairs.entries()) {
    const out = generateText(model, tokenizer, encodePrompt(tokenizer, p.prompt),
      { temperature: 0, topK: 0, topP: 1, maxNewTokens: 5, seed: 0 });
    const ok = checkAnswer(p.prompt, out.text);
    if (ok) correct++;
    if (i < shown) samples.push(`${p.prompt}${out.text.padEnd(4)} ${ok ? 'right' : `wrong (${p.chosen})`}`);
  }
  return { correct, total: pairs.length, samples };
}

/** Writes a randomly initialised demo model folder (config, weights, tokenizer files) into dir. */
export async function writeDemoModelFolder(dir: string, size: DemoModelSize, seed: number): Promise<CausalLM> {
  await mkdir(dir, { recursive: true });
  const model = createModel(demoModelConfig(size), { seed });
  await saveModel(model, dir);
  for (const [name, content] of Object.entries(demoTokenizerFiles())) {
    await writeFile(join(dir, name), JSON.stringify(content, null, 2) + '\n');
  }
  return model;
}

/** Writes the task as train.jsonl and eval.jsonl into dir. */
export async function writeDemoData(dir: string, task: { train: readonly TextPair[]; eval: readonly TextPair[] }):
  Promise<{ train: string; eval: string }> {
  await mkdir(dir, { recursive: true });
  const files = { train: join(dir, 'train.jsonl'), eval: join(dir, 'eval.jsonl') };
  await writeFile(files.train, toJsonl(task.train));
  await writeFile(files.eval, toJsonl(task.eval));
  return files;
}

export async function runDemo(argv: readonly string[]): Promise<number> {
  const d = await resolveCommandOptions('demo', USAGE, argv, DEMO_OPTIONS);
  if (d === null) return 0;
  const started = performance.now();
  const log = (s: string): void => {
    if (!d.json) process.stderr.write(`${s}\n`);
  };
  const baseDir = join(d.output_dir, 'base-model');
  const heads = Math.max(1, Math.round(d.hidden_size / 16));
  await writeDemoModelFolder(baseDir, { hiddenSize: d.hidden_size, layers: d.num_hidden_layers, heads, intermediateSize: d.hidden_size * 2 }, d.seed);
  const task = arithmeticTask(d.seed, d.train_pairs, d.eval_pairs);
  const files = await writeDemoData(join(d.output_dir, 'data'), task);
  log(`demo: ${task.train.length} training and ${task.eval.length} held-out additions, e.g. ` +
    `${task.train[0]!.prompt} chosen "${task.train[0]!.chosen}" rejected "${task.train[0]!.rejected}"`);

  const c: TrainConfig = {
    ...defaultsOf(TRAIN_OPTIONS),
    model: baseDir, dataset: files.train, eval_dataset: files.eval, output_dir: d.output_dir,
    beta: d.beta, learning_rate: d.learning_rate, sft_scope: 'response', max_steps: d.max_steps, per_device_train_batch_size: d.per_device_train_batch_size,
    per_device_eval_batch_size: 50, lr_scheduler_type: 'linear', warmup_ratio: 0.05, seed: d.seed, max_length: 16, max_prompt_length: 8,
    logging_steps: Math.max(1, Math.round(d.max_steps / 30)), eval_steps: Math.max(1, Math.round(d.max_steps / 6)), save_steps: 0,
    threads: d.threads, backend: d.backend,
  };
  const shownPairs = task.eval.slice(0, 50);
  const checks: { before?: GenerationCheck; after?: GenerationCheck } = {};
  const run = await runTraining(c, {
    quiet: d.json,
    title: 'orpo demo: ORPO on two-digit addition',
    beforeTraining: (model, tokenizer) => {
      checks.before = checkGenerations(model, tokenizer, shownPairs, 8);
    },
    reportExtra: (model, tokenizer) => {
      const after = checkGenerations(model, tokenizer, shownPairs, 8);
      checks.after = after;
      const before = checks.before;
      return [
        ...(before === undefined ? [] : [[`Greedy answers before training (${before.correct}/${before.total} right)`, before.samples.join('\n')] as const]),
        [`Greedy answers after training (${after.correct}/${after.total} right)`, after.samples.join('\n')],
      ];
    },
  });
  const r = run.result;
  const seconds = (performance.now() - started) / 1000;
  const pick = (rec: Record<string, number> | null, k: MetricName): number => rec?.[evalName(k)] ?? NaN;
  const summary = {
    backend: run.backend,
    threads: run.model.kernels.getThreads(),
    steps: r.state.global_step,
    seconds: Number(seconds.toFixed(1)),
    before: {
      [evalName(M.rewardsAccuracies)]: pick(r.firstEval, M.rewardsAccuracies), [evalName(M.rewardsMargins)]: pick(r.firstEval, M.rewardsMargins),
      [evalName(M.loss)]: pick(r.firstEval, M.loss), generation_accuracy: checks.before === undefined ? NaN : checks.before.correct / checks.before.total,
    },
    after: {
      [evalName(M.rewardsAccuracies)]: pick(r.lastEval, M.rewardsAccuracies), [evalName(M.rewardsMargins)]: pick(r.lastEval, M.rewardsMargins),
      [evalName(M.loss)]: pick(r.lastEval, M.loss), generation_accuracy: checks.after === undefined ? NaN : checks.after.correct / checks.after.total,
    },
    output_dir: d.output_dir,
  };
  if (d.json) {
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return 0;
  }
  const row = (label: string, k: keyof typeof summary.before, digits: number): string =>
    `  ${label.padEnd(42)} ${summary.before[k].toFixed(digits).padStart(8)} -> ${summary.after[k].toFixed(digits).padStart(8)}`;
  const out = [
    '',
    `ORPO demo (${summary.backend} kernels, ${summary.threads} thread(s), ${summary.steps} steps, ${summary.seconds} s) — held-out problems:`,
    row('preference accuracy (rewards/accuracies)', evalName(M.rewardsAccuracies), 3),
    row('reward margin (rewards/margins)', evalName(M.rewardsMargins), 4),
    row('ORPO loss', evalName(M.loss), 4),
    row('greedy answer right (exact sum)', 'generation_accuracy', 3),
    '',
    'greedy answers after training:',
    ...(checks.after?.samples.map((s) => `  ${s}`) ?? []),
    '',
    `model: ${d.output_dir}  (try: npx orpo generate --model ${d.output_dir} --prompt "12+07=")`,
    `report: ${join(d.output_dir, 'report.html')}`,
  ];
  process.stdout.write(`${out.join('\n')}\n`);
  return 0;
}
