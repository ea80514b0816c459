// Checkpoints on disk: `output_dir/checkpoint-N/` = a Hugging Face model folder (config.json,
// model.safetensors in float32, the tokenizer files; under LoRA a PEFT adapter folder) + optimizer.safetensors (AdamW moments) +
// trainer_state.json (transformers' TrainerState layout; what an exact resume needs besides it sits under its
// stateful_callbacks, see trainerStateJson) + training_args.json + checkpoint_complete.json.
//
// Completeness: a checkpoint is complete only when checkpoint_complete.json, written last, names every file of the
// folder with its size and they are all there. Writing: everything goes into a hidden temporary folder, each file
// fsynced, the marker last, then the folder is renamed to checkpoint-N and the parent fsynced. Deleting (pruning, or a
// checkpoint of the same step replaced): the marker goes first, then the folder is renamed to a temporary name and
// removed. A kill at any point leaves complete checkpoints, folders that do not count as complete, and temporaries
// that the next run removes; never a folder that looks complete and is not.

import { mkdir, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { copyFileAtomically, processIsAlive, removeStaleTemporaryFiles, writeFileAtomically } from '../io/atomic-file.js';
import { readSafetensorsHeader, readTensorF32, writeSafetensors } from '../io/safetensors.js';
import type { AdamW } from '../optim/adamw.js';
import { allFinite, describeProblems, tensorProblems, type NamedRange } from '../optim/finite.js';
import type { TrainConfig } from '../train/config.js';
import type { TrainerState } from '../train/trainer.js';

/** Files of a model folder besides config and weights that a complete model folder carries along. */
export const TOKENIZER_FILES = [
  'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'chat_template.jinja',
  'generation_config.json', 'vocab.json', 'merges.txt', 'tokenizer.model', 'added_tokens.json',
] as const;

const STATE_FILE = 'trainer_state.json';
const OPTIMIZER_FILE = 'optimizer.safetensors';
/** written last into a checkpoint folder: {step, files: {name: bytes}}; without it (or with a file missing) the folder is not a checkpoint */
export const COMPLETE_MARKER = 'checkpoint_complete.json';
const TMP_PREFIX = '.tmp-checkpoint-';
const CHECKPOINT_RE = /^checkpoint-(\d+)$/;
/** the name of orpo-ts's resume state among trainer_state.json's stateful_callbacks */
const RESUME_STATE_KEY = 'OrpoTsResumeState';

/** Copies the tokenizer files that exist in `from` into `to`, each fsynced and renamed into place. */
export async function copyTokenizerFiles(from: string, to: string): Promise<void> {
  for (const name of TOKENIZER_FILES) {
    try {
      await copyFileAtomically(join(from, name), join(to, name));
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

// Test hooks: ORPO_TEST_KILL_DURING_SAVE=N kills this process (SIGKILL, like a power cut or OOM kill) half way
// through writing checkpoint-N, to prove that the previous checkpoint stays valid; ORPO_TEST_KILL_DURING_DELETE=N
// half way through deleting checkpoint-N (its marker gone, its files not yet).
function maybeKillForTest(variable: 'ORPO_TEST_KILL_DURING_SAVE' | 'ORPO_TEST_KILL_DURING_DELETE', step: number): void {
  if (process.env[variable] === String(step)) process.kill(process.pid, 'SIGKILL');
}

/** The options trainer_state.json records (transformers' TrainerState copies them from TrainingArguments). */
export type TrainerStateOptions = Pick<TrainConfig, 'logging_steps' | 'eval_steps' | 'save_steps' | 'per_device_train_batch_size' | 'gradient_accumulation_steps'>;

/**
 * trainer_state.json in transformers' TrainerState layout (its fields, sorted, as save_to_json writes them), so that
 * TrainerState.load_from_json and tools reading log_history work on it. What orpo-ts needs for an exact resume besides
 * (data order, generator state, the logging window, schedule, AdamW's step count, ...) is a stateful callback's
 * attributes under stateful_callbacks.OrpoTsResumeState: transformers keeps that dict as it is, where a new top-level
 * key would make load_from_json fail.
 */
export function trainerStateJson(state: TrainerState, c: TrainerStateOptions, optimizerStep: number): Record<string, unknown> {
  const { global_step, total_steps, log_history, ...resume } = state;
  const stepsPerEpoch = Math.ceil(state.train_pairs / (c.per_device_train_batch_size * c.gradient_accumulation_steps));
  return {
    best_global_step: null,
    best_metric: null,
    best_model_checkpoint: null,
    epoch: Number((state.epoch_index + state.pair_offset / state.train_pairs).toPrecision(8)),
    eval_steps: c.eval_steps,
    global_step,
    is_hyper_param_search: false,
    is_local_process_zero: true,
    is_world_process_zero: true,
    log_history,
    logging_steps: c.logging_steps,
    max_steps: total_steps,
    num_input_tokens_seen: state.tokens_seen,
    num_train_epochs: Math.ceil(total_steps / stepsPerEpoch),
    save_steps: c.save_steps,
    stateful_callbacks: { [RESUME_STATE_KEY]: { args: {}, attributes: { ...resume, optimizer_step: optimizerStep } } },
    train_batch_size: c.per_device_train_batch_size,
    trial_name: null,
    trial_params: null,
  };
}

/** The trainer state and AdamW step count back from trainerStateJson's layout; `file` names it in errors. */
export function parseTrainerStateJson(json: unknown, file: string): { state: TrainerState; optimizerStep: number } {
  const bad = (why: string): Error => new Error(`${file}: ${why}; is this a checkpoint written by orpo train?`);
  if (typeof json !== 'object' || json === null) throw bad('not a JSON object');
  const o = json as Record<string, unknown>;
  const callbacks = o['stateful_callbacks'];
  const entry = typeof callbacks === 'object' && callbacks !== null ? (callbacks as Record<string, unknown>)[RESUME_STATE_KEY] : undefined;
  const resume = typeof entry === 'object' && entry !== null ? (entry as Record<string, unknown>)['attributes'] : undefined;
  if (typeof resume !== 'object' || resume === null) throw bad(`no stateful_callbacks.${RESUME_STATE_KEY} (the state an exact resume needs)`);
  const r = resume as Record<string, unknown>;
  const count = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  for (const [key, value] of [['global_step', o['global_step']], ['max_steps', o['max_steps']], ['optimizer_step', r['optimizer_step']],
    ['train_pairs', r['train_pairs']], ['epoch_index', r['epoch_index']], ['pair_offset', r['pair_offset']]] as const) {
    if (!count(value)) throw bad(`${key} is ${JSON.stringify(value)}, not a count`);
  }
  if (!Array.isArray(o['log_history'])) throw bad('log_history is not a list');
  if (!Array.isArray(r['order']) || !r['order'].every((i) => count(i) && i < (r['train_pairs'] as number))) throw bad('the data order is corrupt');
  if (!Array.isArray(r['rng']) || typeof r['window'] !== 'object' || typeof r['schedule'] !== 'object') throw bad('the generator, window or schedule state is missing');
  const { optimizer_step, ...rest } = r;
  const state = {
    ...rest, global_step: o['global_step'], total_steps: o['max_steps'], log_history: o['log_history'],
    train_loss_sum: typeof r['train_loss_sum'] === 'number' ? r['train_loss_sum'] : 0,
    tokens_seen: typeof r['tokens_seen'] === 'number' ? r['tokens_seen'] : 0,
  } as unknown as TrainerState;
  return { state, optimizerStep: optimizer_step as number };
}

export interface SaveCheckpointInput {
  outputDir: string;
  /** writes the weights into a folder: the whole model, or only the LoRA adapter */
  writeWeights: (dir: string) => Promise<void>;
  optimizer: AdamW;
  state: TrainerState;
  /** where the tokenizer files come from (the starting model folder) */
  tokenizerDir: string;
  /** the resolved options, stored as training_args.json (and the ones trainer_state.json records) */
  args: Readonly<Record<string, unknown>> & TrainerStateOptions;
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
  maybeKillForTest('ORPO_TEST_KILL_DURING_SAVE', step);
  await writeFileAtomically(join(tmp, 'training_args.json'), JSON.stringify(x.args, null, 2) + '\n');
  await writeFileAtomically(join(tmp, STATE_FILE), JSON.stringify(trainerStateJson(x.state, x.args, x.optimizer.step), null, 2) + '\n');
  // the marker last: it lists what was written, so a folder that lost a file later does not count as complete either
  const files: Record<string, number> = {};
  for (const name of (await readdir(tmp)).sort()) files[name] = (await stat(join(tmp, name))).size;
  await writeFileAtomically(join(tmp, COMPLETE_MARKER), JSON.stringify({ step, files }, null, 2) + '\n');
  await syncDir(tmp);
  // a checkpoint of the same step from an earlier run (resumed from before it) is replaced
  await removeCheckpoint(x.outputDir, final);
  await rename(tmp, final);
  await syncDir(x.outputDir);
  return final;
}

/** Why `dir` is not a complete checkpoint (null when it is one): its marker is missing, unreadable or names a file that is not there. */
async function incompleteBecause(dir: string): Promise<string | null> {
  let marker: { files?: unknown };
  try {
    marker = JSON.parse(await readFile(join(dir, COMPLETE_MARKER), 'utf8')) as { files?: unknown };
  } catch {
    return `no readable ${COMPLETE_MARKER} (a save or a deletion was cut short, or an older orpo-ts wrote it)`;
  }
  if (typeof marker.files !== 'object' || marker.files === null) return `${COMPLETE_MARKER} lists no files`;
  for (const [name, size] of Object.entries(marker.files as Record<string, unknown>)) {
    const found = await stat(join(dir, name)).then((s) => s.size, () => null);
    if (found === null) return `${name} is missing`;
    if (found !== size) return `${name} has ${found} bytes where ${size} were written`;
  }
  return null;
}

export interface CheckpointFolders {
  /** complete checkpoints, oldest first */
  complete: { step: number; dir: string }[];
  /** checkpoint-N folders that do not count as complete, with the reason */
  incomplete: { step: number; dir: string; why: string }[];
}

/** Every checkpoint-N folder of outputDir, complete or not. */
export async function scanCheckpoints(outputDir: string): Promise<CheckpointFolders> {
  const names = await readdir(outputDir).catch(() => [] as string[]);
  const out: CheckpointFolders = { complete: [], incomplete: [] };
  for (const name of names) {
    const m = CHECKPOINT_RE.exec(name);
    if (m === null) continue;
    const dir = join(outputDir, name);
    const why = await incompleteBecause(dir);
    if (why === null) out.complete.push({ step: Number(m[1]), dir });
    else out.incomplete.push({ step: Number(m[1]), dir, why });
  }
  out.complete.sort((a, b) => a.step - b.step);
  out.incomplete.sort((a, b) => a.step - b.step);
  return out;
}

/** checkpoint-N folders that are complete (their marker says so), oldest first. */
export async function listCheckpoints(outputDir: string): Promise<{ step: number; dir: string }[]> {
  return (await scanCheckpoints(outputDir)).complete;
}

/**
 * Removes what a killed run left in outputDir: temporary checkpoint folders and `<file>.tmp-<pid>` files of
 * processes that are gone (a final save cut short leaves model.safetensors.tmp-PID). Returns the names removed.
 */
export async function removeStaleTemporaries(outputDir: string): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await readdir(outputDir).catch(() => [] as string[])) {
    if (!name.startsWith(TMP_PREFIX)) continue;
    const pid = Number(/-(\d+)$/.exec(name)?.[1]);
    if (pid !== process.pid && Number.isInteger(pid) && processIsAlive(pid)) continue;
    await rm(join(outputDir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return [...removed, ...await removeStaleTemporaryFiles(outputDir)];
}

/**
 * Deletes a checkpoint folder so that a kill at any moment leaves no folder that counts as complete: the marker
 * first, then a rename out of the checkpoint-N names (a temporary the next run removes), then the files.
 */
export async function removeCheckpoint(outputDir: string, dir: string): Promise<void> {
  const exists = await stat(dir).then(() => true, () => false);
  if (!exists) return;
  await unlink(join(dir, COMPLETE_MARKER)).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') throw e;
  });
  await syncDir(dir);
  maybeKillForTest('ORPO_TEST_KILL_DURING_DELETE', Number(CHECKPOINT_RE.exec(dir.split(/[\\/]/).pop() ?? '')?.[1]));
  const doomed = join(outputDir, `${TMP_PREFIX}deleted-${dir.split(/[\\/]/).pop()}-${process.pid}`);
  await rm(doomed, { recursive: true, force: true });
  await rename(dir, doomed);
  await syncDir(outputDir);
  await rm(doomed, { recursive: true, force: true });
}

/**
 * Keeps the newest `limit` complete checkpoints; folders that never completed (or were half deleted) older than the
 * newest complete one go too, since nothing can resume from them.
 */
export async function pruneCheckpoints(outputDir: string, limit: number | null): Promise<void> {
  if (limit === null) return;
  const { complete, incomplete } = await scanCheckpoints(outputDir);
  const newest = complete[complete.length - 1]?.step ?? -1;
  for (const c of incomplete.filter((x) => x.step < newest)) await removeCheckpoint(outputDir, c.dir);
  for (const c of complete.slice(0, Math.max(0, complete.length - limit))) await removeCheckpoint(outputDir, c.dir);
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

/** The checkpoint `--resume` names: a folder, or for 'latest' the newest complete one in outputDir (and the newer ones skipped). */
export async function findResumeCheckpoint(resume: string, outputDir: string): Promise<{ dir: string; skipped: { dir: string; why: string }[] }> {
  if (resume !== 'latest') {
    const why = await stat(join(resume, STATE_FILE)).then(() => incompleteBecause(resume), () => null);
    if (why !== null) throw new Error(`--resume ${resume}: not a complete checkpoint: ${why}; give another checkpoint-N folder, or --resume alone for the newest complete one`);
    return { dir: resume, skipped: [] };
  }
  const { complete, incomplete } = await scanCheckpoints(outputDir);
  const latest = complete[complete.length - 1];
  if (latest === undefined) {
    const torn = incomplete.length === 0 ? '' : ` (${incomplete.map((x) => `${x.dir}: ${x.why}`).join('; ')})`;
    throw new Error(`--resume: no complete checkpoint-N folder in ${outputDir} to resume from${torn}`);
  }
  return { dir: latest.dir, skipped: incomplete.filter((x) => x.step > latest.step) };
}

/** `resume` = a checkpoint folder, or 'latest' = the newest complete checkpoint in outputDir. */
export async function resolveResumeDir(resume: string, outputDir: string): Promise<string> {
  return (await findResumeCheckpoint(resume, outputDir)).dir;
}

/** training_args.json of a checkpoint: the options of the run that wrote it. */
export async function readTrainingArgs(dir: string): Promise<Record<string, unknown>> {
  try {
    return JSON.parse(await readFile(join(dir, 'training_args.json'), 'utf8')) as Record<string, unknown>;
  } catch {
    throw new Error(`${dir}: no readable training_args.json; is this a checkpoint-N folder written by orpo train?`);
  }
}

/**
 * Refuses weights that hold NaN/Inf where they enter a run (a checkpoint's, or a starting model's), naming the file
 * and the tensors.
 */
export function assertFiniteWeights(file: string, params: Float32Array, layout: readonly NamedRange[]): void {
  if (allFinite(params)) return;
  throw new Error(`${file}: the weights hold NaN/Inf: ${describeProblems(tensorProblems(params, layout))}; ` +
    'nothing can train from them (resume from an earlier checkpoint, or start again)');
}

/** A checkpoint's trainer state, optimizer moments and options (the weights are loaded by the caller), all checked. */
export async function loadCheckpoint(dir: string, trainableSize: number): Promise<LoadedCheckpoint> {
  let stateText: string;
  try {
    stateText = await readFile(join(dir, STATE_FILE), 'utf8');
  } catch {
    throw new Error(`${dir}: not a checkpoint (no ${STATE_FILE}); give a checkpoint-N folder or --resume alone for the latest`);
  }
  const incomplete = await incompleteBecause(dir);
  if (incomplete !== null) throw new Error(`${dir}: not a complete checkpoint: ${incomplete}; resume from another checkpoint-N folder`);
  let json: unknown;
  try {
    json = JSON.parse(stateText);
  } catch (e) {
    throw new Error(`${join(dir, STATE_FILE)}: not valid JSON (${(e as Error).message})`);
  }
  const { state, optimizerStep } = parseTrainerStateJson(json, join(dir, STATE_FILE));
  const file = join(dir, OPTIMIZER_FILE);
  const header = await readSafetensorsHeader(file);
  const tensor = (name: string): ReturnType<typeof header.tensors.get> & object => {
    const info = header.tensors.get(name);
    if (info === undefined) throw new Error(`${file}: tensor '${name}' is missing`);
    if (info.shape[0] !== trainableSize) {
      throw new Error(`${file}: '${name}' has ${info.shape[0]} values but this run trains ${trainableSize} ` +
        'parameters; resume with the options (e.g. the LoRA ones) of the run that wrote the checkpoint');
    }
    return info;
  };
  const m = await readTensorF32(tensor('exp_avg'));
  const v = await readTensorF32(tensor('exp_avg_sq'));
  // NaN in either moment, or a negative mean of squares, would poison every step after the resume
  const whole = [{ name: 'exp_avg', offset: 0, size: m.length }];
  const problems = [...tensorProblems(m, whole), ...tensorProblems(v, [{ name: 'exp_avg_sq', offset: 0, size: v.length }], { nonNegative: true })];
  if (problems.length > 0) throw new Error(`${file}: corrupt AdamW state: ${describeProblems(problems)}; resume from another checkpoint`);
  const args = await readTrainingArgs(dir);
  return { dir, state, m, v, optimizerStep, args };
}
