// Checkpoints on disk: `output_dir/checkpoint-N/` = a Hugging Face model folder (config.json,
// model.safetensors in float32, the tokenizer files; under LoRA a PEFT adapter folder) + optimizer.safetensors (AdamW moments) +
// trainer_state.json (step, schedule, data order, RNG state, log history) + training_args.json.
//
// Atomicity: everything is written into a hidden temporary folder, each file fsynced, trainer_state.json last,
// then the folder is renamed to checkpoint-N and the parent fsynced. A crash at any point leaves either no
// checkpoint-N or a complete one, and the previous checkpoints untouched; a leftover temporary folder is
// never mistaken for a checkpoint and is removed by the next run.

import { copyFile, mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomically } from '../io/atomic-file.js';
import { readSafetensorsHeader, readTensorF32, writeSafetensors } from '../io/safetensors.js';
import type { AdamW } from '../optim/adamw.js';
import type { TrainerState } from '../train/trainer.js';

/** Files of a model folder besides config and weights that a complete model folder carries along. */
export const TOKENIZER_FILES = [
  'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'chat_template.jinja',
  'generation_config.json', 'vocab.json', 'merges.txt', 'tokenizer.model', 'added_tokens.json',
] as const;

const STATE_FILE = 'trainer_state.json';
const OPTIMIZER_FILE = 'optimizer.safetensors';
const TMP_PREFIX = '.tmp-checkpoint-';
const CHECKPOINT_RE = /^checkpoint-(\d+)$/;

/** Copies the tokenizer files that exist in `from` into `to`. */
export async function copyTokenizerFiles(from: string, to: string): Promise<void> {
  for (const name of TOKENIZER_FILES) {
    try {
      await copyFile(join(from, name), join(to, name));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r').catch(() => null);
  if (handle === null) return;
  await handle.sync().catch(() => undefined);
  await handle.close();
}

// Test hook: ORPO_TEST_KILL_DURING_SAVE=N kills this process (SIGKILL, like a power cut or OOM kill) half way
// through writing checkpoint-N, to prove that the previous checkpoint stays valid.
function maybeKillForTest(step: number): void {
  if (process.env['ORPO_TEST_KILL_DURING_SAVE'] === String(step)) process.kill(process.pid, 'SIGKILL');
}

export interface SaveCheckpointInput {
  outputDir: string;
  /** writes the weights into a folder: the whole model, or only the LoRA adapter */
  writeWeights: (dir: string) => Promise<void>;
  optimizer: AdamW;
  state: TrainerState;
  /** where the tokenizer files come from (the starting model folder) */
  tokenizerDir: string;
  /** the resolved options, stored as training_args.json */
  args: Readonly<Record<string, unknown>>;
}

export async function saveCheckpoint(x: SaveCheckpointInput): Promise<string> {
  const step = x.state.global_step;
  const final = join(x.outputDir, `checkpoint-${step}`);
  const tmp = join(x.outputDir, `${TMP_PREFIX}${step}-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  await x.writeWeights(tmp);
  await copyTokenizerFiles(x.tokenizerDir, tmp);
  await writeSafetensors(join(tmp, OPTIMIZER_FILE), [
    { name: 'exp_avg', shape: [x.optimizer.m.length], data: x.optimizer.m },
    { name: 'exp_avg_sq', shape: [x.optimizer.v.length], data: x.optimizer.v },
  ], { metadata: { step: String(x.optimizer.step) } });
  maybeKillForTest(step);
  await writeFileAtomically(join(tmp, 'training_args.json'), JSON.stringify(x.args, null, 2) + '\n');
  await writeFileAtomically(join(tmp, STATE_FILE), JSON.stringify({ ...x.state, optimizer_step: x.optimizer.step }) + '\n');
  await syncDir(tmp);
  // a checkpoint of the same step from an earlier run (resumed from before it) is replaced
  await rm(final, { recursive: true, force: true });
  await rename(tmp, final);
  await syncDir(x.outputDir);
  return final;
}

/** checkpoint-N folders that are complete (have trainer_state.json), oldest first. */
export async function listCheckpoints(outputDir: string): Promise<{ step: number; dir: string }[]> {
  let names: string[];
  try {
    names = await readdir(outputDir);
  } catch {
    return [];
  }
  const found: { step: number; dir: string }[] = [];
  for (const name of names) {
    const m = CHECKPOINT_RE.exec(name);
    if (m === null) continue;
    const dir = join(outputDir, name);
    if (await stat(join(dir, STATE_FILE)).then(() => true, () => false)) found.push({ step: Number(m[1]), dir });
  }
  return found.sort((a, b) => a.step - b.step);
}

/** Removes temporary folders left by a crash during a save. */
export async function removeStaleTemporaries(outputDir: string): Promise<void> {
  const names = await readdir(outputDir).catch(() => [] as string[]);
  for (const name of names) if (name.startsWith(TMP_PREFIX)) await rm(join(outputDir, name), { recursive: true, force: true });
}

/** Keeps the newest `limit` checkpoints. */
export async function pruneCheckpoints(outputDir: string, limit: number | null): Promise<void> {
  if (limit === null) return;
  const all = await listCheckpoints(outputDir);
  for (const c of all.slice(0, Math.max(0, all.length - limit))) await rm(c.dir, { recursive: true, force: true });
}

export interface LoadedCheckpoint {
  dir: string;
  state: TrainerState;
  m: Float32Array;
  v: Float32Array;
  optimizerStep: number;
  /** training_args.json: the options of the run that wrote it */
  args: Record<string, unknown>;
}

/** `resume` = a checkpoint folder, or 'latest' = the newest complete checkpoint in outputDir. */
export async function resolveResumeDir(resume: string, outputDir: string): Promise<string> {
  if (resume !== 'latest') return resume;
  const all = await listCheckpoints(outputDir);
  const latest = all[all.length - 1];
  if (latest === undefined) throw new Error(`--resume: no complete checkpoint-N folder in ${outputDir} to resume from`);
  return latest.dir;
}

/** A checkpoint's trainer state, optimizer moments and options (the weights are loaded by the caller). */
/** training_args.json of a checkpoint: the options of the run that wrote it. */
export async function readTrainingArgs(dir: string): Promise<Record<string, unknown>> {
  try {
    return JSON.parse(await readFile(join(dir, 'training_args.json'), 'utf8')) as Record<string, unknown>;
  } catch {
    throw new Error(`${dir}: no readable training_args.json; is this a checkpoint-N folder written by orpo train?`);
  }
}

export async function loadCheckpoint(dir: string, trainableSize: number): Promise<LoadedCheckpoint> {
  let stateText: string;
  try {
    stateText = await readFile(join(dir, STATE_FILE), 'utf8');
  } catch {
    throw new Error(`${dir}: not a checkpoint (no ${STATE_FILE}); give a checkpoint-N folder or --resume alone for the latest`);
  }
  const state = JSON.parse(stateText) as TrainerState & { optimizer_step: number };
  const header = await readSafetensorsHeader(join(dir, OPTIMIZER_FILE));
  const tensor = (name: string): ReturnType<typeof header.tensors.get> & object => {
    const info = header.tensors.get(name);
    if (info === undefined) throw new Error(`${join(dir, OPTIMIZER_FILE)}: tensor '${name}' is missing`);
    if (info.shape[0] !== trainableSize) {
      throw new Error(`${join(dir, OPTIMIZER_FILE)}: '${name}' has ${info.shape[0]} values but this run trains ${trainableSize} ` +
        'parameters; resume with the options (e.g. the LoRA ones) of the run that wrote the checkpoint');
    }
    return info;
  };
  const m = await readTensorF32(tensor('exp_avg'));
  const v = await readTensorF32(tensor('exp_avg_sq'));
  const args = await readTrainingArgs(dir);
  return { dir, state, m, v, optimizerStep: state.optimizer_step, args };
}
