// `orpo compare`: several methods trained on the same data, held-out split, order, steps and seed, side by side.
// Each method is an ordinary `orpo train` run in a child process (its own output folder, metrics.jsonl, report and
// an honest peak memory); `sft+dpo` is the paper's two-stage baseline: DPO starting from, and referenced to, the SFT
// result. Then, with a judge, every method's final model (and the starting model, 'base') completes the same
// held-out prompts with the same sampling seed, and the judge's verdicts give mean scores and head-to-head win rates.
// Writes results.json, summary.md, report.html and charts/*.svg. A finished method's run is reused when compare is
// run again with the same options, so an interrupted comparison continues where it stopped.

import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { TokenPair } from '../data/collate.js';
import { encodePrompt } from '../data/tokenize.js';
import { type ChatMessage, type Tokenizer } from '../data/tokenizer.js';
import { loadTokenizer } from '../io/tokenizer-files.js';
import { METHODS, type Method } from '../loss/objective.js';
import { objectiveFromConfig, TRAIN_ALIASES, TRAIN_OPTIONS, validateTrainConfig, type TrainConfig } from '../train/config.js';
import { OptionError, type OptionTable } from '../train/options.js';
import { estimate, pairwiseOutcome, pointwiseOutcomes, winRate, type Estimate, type WinRate } from '../compare/win-rates.js';
import type { CompareResults, CurvePoint, JudgeResults, MethodRun } from '../compare/results.js';
import { writeFileAtomically } from '../io/atomic-file.js';
import { removeCheckpoint, scanCheckpoints } from './checkpoint.js';
import { resolveCommandOptions } from './args.js';
import { generateText } from './generate.js';
import { loadModelOrAdapter } from './model-folder.js';
import { dataLimitsOf, loadPairs } from './pairs.js';
import { splitForEval } from './train.js';

/** what --methods may list: the objectives, and the paper's two-stage baseline */
export const COMPARE_METHODS = [...METHODS, 'sft+dpo'] as const;
export type CompareMethod = (typeof COMPARE_METHODS)[number];

// options of a single run that compare sets itself
const OWN = ['method', 'resume', 'ref_model', 'beta'] as const;
type TrainPart = Omit<TrainConfig, (typeof OWN)[number]>;

export interface CompareConfig extends TrainPart {
  methods: string;
  orpo_beta: number | null;
  dpo_beta: number | null;
  simpo_beta: number | null;
  judge: string | null;
  judge_prompts: string | null;
  judge_max_prompts: number;
  max_new_tokens: number;
  temperature: number;
  top_k: number;
  top_p: number;
  stop_token_ids: string | null;
}

const trainPart = Object.fromEntries(Object.entries(TRAIN_OPTIONS).filter(([k]) => !(OWN as readonly string[]).includes(k))) as unknown as OptionTable<TrainPart>;

export const COMPARE_OPTIONS: OptionTable<CompareConfig> = {
  methods: { type: 'string', default: 'sft,dpo,orpo,simpo', group: 'Compare', doc: `comma-separated methods to train and compare: ${COMPARE_METHODS.join(', ')} (sft+dpo: DPO from the SFT result, the paper's two-stage baseline)` },
  orpo_beta: { type: 'float', default: null, min: 0, symbol: 'λ', group: 'Compare', doc: "orpo's λ (none: TRL's 0.1)" },
  dpo_beta: { type: 'float', default: null, min: 0, symbol: 'β', group: 'Compare', doc: "dpo's and sft+dpo's β (none: TRL's 0.1)" },
  simpo_beta: { type: 'float', default: null, min: 0, symbol: 'β', group: 'Compare', doc: "simpo's β (none: 2.0)" },
  judge: { type: 'path', default: null, group: 'Judge', doc: 'a JavaScript module (ESM) whose default export (or `judge`) scores a completion, (prompt, completion) => number, or compares two, (prompt, a, b) => -1 | 0 | 1; with it, win rates on held-out prompts' },
  judge_prompts: { type: 'path', default: null, group: 'Judge', doc: 'JSONL of {"prompt": text or messages} to judge on (none: the held-out pairs\' prompts)' },
  judge_max_prompts: { type: 'int', default: 200, min: 1, group: 'Judge', doc: 'judge on at most this many prompts' },
  max_new_tokens: { type: 'int', default: 64, min: 1, group: 'Judge', doc: 'length of each judged completion' },
  temperature: { type: 'float', default: 0, min: 0, symbol: 'T', group: 'Judge', doc: 'sampling temperature of the judged completions (0 = greedy); prompt i uses seed + i for every model' },
  top_k: { type: 'int', default: 0, min: 0, group: 'Judge', doc: 'sample among the k most likely tokens (0 = all)' },
  top_p: { type: 'float', default: 1, min: 0, minExclusive: true, max: 1, group: 'Judge', doc: 'nucleus sampling mass' },
  stop_token_ids: { type: 'string', default: null, group: 'Judge', doc: 'comma-separated token ids that also end a judged completion, besides EOS (e.g. 1 for a story model that ends a story with BOS)' },
  ...trainPart,
};

const USAGE = `Usage: orpo compare --model DIR --dataset FILE --output-dir DIR [--methods sft,dpo,orpo,simpo] [--max-steps N]
                     [--judge judge.mjs] [train options]

Trains each method on the same data, held-out split, order, steps and seed, and puts them side by side: held-out
log-probs of chosen and rejected responses over the steps, a method-neutral preference accuracy and margin,
each method's own metrics, wall time, tokens run (policy and reference) and peak memory; with --judge, win rates
of each method's completions against every other's. Writes results.json, summary.md and report.html.
Without eval_dataset, 10% of the data is held out (eval_split_ratio 0.1).`;

/** --methods -> the list, checked */
export function parseMethods(text: string): CompareMethod[] {
  const list = text.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (list.length === 0) throw new OptionError('--methods lists no method');
  for (const m of list) {
    if (!(COMPARE_METHODS as readonly string[]).includes(m)) throw new OptionError(`--methods: unknown method '${m}' (choose from ${COMPARE_METHODS.join(', ')})`);
  }
  if (new Set(list).size !== list.length) throw new OptionError(`--methods lists a method twice: ${text}`);
  return list as CompareMethod[];
}

/** the `orpo train` options of one method's run (stage 'dpo' of sft+dpo starts from the SFT model) */
function runConfig(c: CompareConfig, method: Method, outputDir: string, model: string): TrainConfig {
  const { methods: _m, orpo_beta, dpo_beta, simpo_beta, judge: _j, judge_prompts: _p, judge_max_prompts: _n, max_new_tokens: _t,
    temperature: _temp, top_k: _k, top_p: _tp, stop_token_ids: _s, ...train } = c;
  const beta = { orpo: orpo_beta, dpo: dpo_beta, simpo: simpo_beta, sft: null }[method];
  return {
    ...train, method, beta, model, output_dir: outputDir, resume: null, ref_model: null,
    precompute_ref_log_probs: method === 'dpo' ? c.precompute_ref_log_probs : false,
  };
}

/** what compare reads of a run's train_results.json (orpo train's summary, transformers' layout) */
interface Summary {
  global_step: number;
  forward_tokens: number;
  reference_forward_tokens: number;
  peak_rss_mb: number;
  interrupted: boolean;
  train_samples: number;
  eval_samples: number;
}

interface FinishedRun {
  dir: string;
  summary: Summary;
  records: Record<string, number>[];
  wallSeconds: number;
  options: Record<string, unknown>;
}

const mainScript = fileURLToPath(new URL('./main.js', import.meta.url));

function runChild(args: readonly string[], what: string): Promise<number> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [mainScript, ...args], { stdio: 'inherit' });
    child.on('error', fail);
    child.on('exit', (code, signal) => {
      if (code === 0) done(0);
      else fail(new Error(`${what} failed (${signal ?? `exit code ${code}`}); its output is above`));
    });
  });
}

/** One method's `orpo train` run, or the finished one already in its folder when its options are the same. */
async function trainOnce(outDir: string, key: string, cfg: TrainConfig, say: (s: string) => void): Promise<FinishedRun> {
  const dir = cfg.output_dir!;
  const configFile = join(outDir, 'configs', `${key}.json`);
  const text = `${JSON.stringify(cfg, null, 2)}\n`;
  const resultsFile = join(dir, 'train_results.json');
  const timingFile = join(outDir, 'configs', `${key}.wall.json`);
  const previous = existsSync(configFile) ? readFileSync(configFile, 'utf8') : null;
  let wallSeconds: number;
  if (previous === text && existsSync(resultsFile) && existsSync(timingFile) &&
    (JSON.parse(readFileSync(resultsFile, 'utf8')) as Summary).interrupted === false) {
    say(`${key}: reusing the finished run in ${dir} (same options)`);
    wallSeconds = (JSON.parse(readFileSync(timingFile, 'utf8')) as { wall_seconds: number }).wall_seconds;
  } else {
    await mkdir(join(outDir, 'configs'), { recursive: true });
    // the run in this folder (other options, or unfinished) is replaced: orpo train refuses a folder holding another run's checkpoints
    const stale = await scanCheckpoints(dir);
    for (const x of [...stale.complete, ...stale.incomplete]) await removeCheckpoint(dir, x.dir);
    await writeFileAtomically(configFile, text);
    say(`${key}: orpo train --config ${configFile}`);
    const started = performance.now();
    await runChild(['train', '--config', configFile], `training ${key}`);
    wallSeconds = (performance.now() - started) / 1000;
    await writeFileAtomically(timingFile, `${JSON.stringify({ wall_seconds: wallSeconds })}\n`);
  }
  const summary = JSON.parse(await readFile(resultsFile, 'utf8')) as Summary;
  const records = (await readFile(join(dir, 'metrics.jsonl'), 'utf8')).split('\n').filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, number>);
  return { dir, summary, records, wallSeconds, options: { ...objectiveFromConfig(cfg).options } };
}

// an evaluation's timing (transformers' eval_runtime, eval_samples_per_second, eval_steps_per_second) is no point of a held-out curve
const EVAL_TIMING = new Set(['eval_runtime', 'eval_samples_per_second', 'eval_steps_per_second']);
const evalRecords = (records: readonly Record<string, number>[]): CurvePoint[] => records
  .filter((r) => Object.keys(r).some((k) => k.startsWith('eval_')))
  .map((r) => Object.fromEntries(Object.entries(r).filter(([k]) => !EVAL_TIMING.has(k))));

function methodRun(name: string, stages: readonly FinishedRun[]): MethodRun {
  let offset = 0;
  const curve: CurvePoint[] = [];
  for (const s of stages) {
    for (const r of evalRecords(s.records)) curve.push({ ...r, step: r['step']! + offset });
    offset += s.summary.global_step;
  }
  const last = stages[stages.length - 1]!;
  const sum = (f: (r: FinishedRun) => number): number => stages.reduce((a, r) => a + f(r), 0);
  return {
    name, dir: last.dir, options: last.options, steps: offset,
    wall_seconds: Number(sum((r) => r.wallSeconds).toFixed(2)),
    forward_tokens: sum((r) => r.summary.forward_tokens),
    reference_forward_tokens: sum((r) => r.summary.reference_forward_tokens),
    peak_rss_mb: Math.max(...stages.map((r) => r.summary.peak_rss_mb)),
    curve, final: curve[curve.length - 1] ?? {},
    ...(stages.length > 1 ? { stages: stages.map((s) => s.dir) } : {}),
  };
}

// ------------------------------------------------------------------------------------------------ judging

type Pointwise = (prompt: string, completion: string) => number | Promise<number>;
type Pairwise = (prompt: string, a: string, b: string) => number | Promise<number>;
export type Judge = { kind: 'pointwise'; fn: Pointwise } | { kind: 'pairwise'; fn: Pairwise };

/** A user's judge module: default export (or `judge`), pointwise with two parameters, pairwise with three. */
export async function loadJudge(file: string): Promise<Judge> {
  let mod: Record<string, unknown>;
  try {
    mod = await import(pathToFileURL(resolve(file)).href) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`--judge ${file}: cannot be imported (${(e as Error).message.split('\n')[0]})`);
  }
  const fn = mod['default'] ?? mod['judge'];
  if (typeof fn !== 'function') throw new Error(`--judge ${file}: exports no function (export default (prompt, completion) => number, or (prompt, a, b) => -1 | 0 | 1)`);
  const pairwise = mod['pairwise'] === true || (mod['pairwise'] === undefined && fn.length >= 3);
  return pairwise ? { kind: 'pairwise', fn: fn as Pairwise } : { kind: 'pointwise', fn: fn as Pointwise };
}

interface JudgePrompt {
  text: string;
  ids: number[];
}

/** --judge-prompts: one JSON object per line with a `prompt` (text, or chat messages rendered by the template) */
async function promptsFromFile(file: string, tokenizer: Tokenizer): Promise<JudgePrompt[]> {
  const lines = (await readFile(file, 'utf8')).split('\n');
  const out: JudgePrompt[] = [];
  for (const [i, line] of lines.entries()) {
    if (line.trim() === '') continue;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (e) {
      throw new Error(`${file}:${i + 1}: not valid JSON (${(e as Error).message})`);
    }
    const prompt = typeof row === 'string' ? row : (row as { prompt?: unknown } | null)?.prompt;
    if (typeof prompt === 'string') out.push({ text: prompt, ids: encodePrompt(tokenizer, prompt) });
    else if (Array.isArray(prompt)) {
      const rendered = tokenizer.applyChatTemplate(prompt as ChatMessage[], { addGenerationPrompt: true });
      out.push({ text: rendered, ids: encodePrompt(tokenizer, rendered) });
    } else throw new Error(`${file}:${i + 1}: no "prompt" (a string, or a list of chat messages)`);
  }
  if (out.length === 0) throw new Error(`${file}: no prompts`);
  return out;
}

/** the held-out pairs, split as every run split them */
async function heldOutPairs(c: CompareConfig, dataset: string, tokenizer: Tokenizer): Promise<TokenPair[]> {
  const limits = dataLimitsOf(c);
  return c.eval_dataset !== null
    ? (await loadPairs(c.eval_dataset, tokenizer, limits)).pairs
    : splitForEval((await loadPairs(dataset, tokenizer, limits)).pairs, c.eval_split_ratio, c.seed).eval;
}

/** the held-out pairs' distinct prompts, in order */
function promptsFromPairs(pairs: readonly TokenPair[], tokenizer: Tokenizer): JudgePrompt[] {
  const seen = new Set<string>();
  const out: JudgePrompt[] = [];
  for (const p of pairs) {
    const key = p.prompt.join(',');
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ text: tokenizer.decode(p.prompt, { skipSpecialTokens: true }), ids: p.prompt });
  }
  return out;
}

export function parseStopIds(text: string | null): number[] {
  if (text === null) return [];
  return text.split(',').map((t) => {
    const id = Number(t.trim());
    if (!Number.isInteger(id) || id < 0) throw new OptionError(`--stop-token-ids: '${t}' is not a token id`);
    return id;
  });
}

async function judgeAll(c: CompareConfig, judge: Judge, contestants: readonly { name: string; dir: string }[], prompts: readonly JudgePrompt[],
  tokenizer: Tokenizer, outDir: string, say: (s: string) => void): Promise<JudgeResults> {
  const completions = new Map<string, string[]>();
  const sampling = { temperature: c.temperature, topK: c.top_k, topP: c.top_p, maxNewTokens: c.max_new_tokens, extraStopTokenIds: parseStopIds(c.stop_token_ids) };
  await mkdir(join(outDir, 'generations'), { recursive: true });
  const scores = new Map<string, number[]>();
  for (const who of contestants) {
    const model = await loadModelOrAdapter(who.dir);
    model.kernels.setThreads(c.threads ?? availableParallelism());
    const texts = prompts.map((p, i) => generateText(model, tokenizer, p.ids, { ...sampling, seed: c.seed + i }).text);
    completions.set(who.name, texts);
    const rows: string[] = [];
    if (judge.kind === 'pointwise') {
      const s: number[] = [];
      for (const [i, p] of prompts.entries()) {
        const v = await judge.fn(p.text, texts[i]!);
        if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`--judge ${c.judge}: returned ${String(v)} for prompt ${i}; a judge returns a finite number`);
        s.push(v);
      }
      scores.set(who.name, s);
      prompts.forEach((p, i) => rows.push(JSON.stringify({ prompt: p.text, completion: texts[i], score: s[i] })));
      say(`judged ${who.name}: mean score ${(s.reduce((a, b) => a + b, 0) / s.length).toFixed(4)} over ${s.length} prompts`);
    } else {
      prompts.forEach((p, i) => rows.push(JSON.stringify({ prompt: p.text, completion: texts[i] })));
      say(`generated ${prompts.length} completions with ${who.name}`);
    }
    await writeFileAtomically(join(outDir, 'generations', `${who.name}.jsonl`), `${rows.join('\n')}\n`);
  }
  const winRates: WinRate[] = [];
  for (const [ia, a] of contestants.entries()) {
    for (const b of contestants.slice(ia + 1)) {
      let outcomes: number[];
      if (judge.kind === 'pointwise') outcomes = pointwiseOutcomes(scores.get(a.name)!, scores.get(b.name)!);
      else {
        outcomes = [];
        const ta = completions.get(a.name)!;
        const tb = completions.get(b.name)!;
        for (const [i, p] of prompts.entries()) {
          const ab = await judge.fn(p.text, ta[i]!, tb[i]!);
          const ba = await judge.fn(p.text, tb[i]!, ta[i]!);
          for (const v of [ab, ba]) if (v !== -1 && v !== 0 && v !== 1) throw new Error(`--judge ${c.judge}: returned ${String(v)} for prompt ${i}; a pairwise judge returns -1, 0 or 1`);
          outcomes.push(pairwiseOutcome(ab, ba));
        }
      }
      winRates.push(winRate(a.name, b.name, outcomes));
    }
  }
  const out: JudgeResults = {
    file: c.judge!, kind: judge.kind, prompts: prompts.length, contestants: contestants.map((x) => x.name), winRates,
    sampling: { temperature: c.temperature, top_p: c.top_p, top_k: c.top_k, max_new_tokens: c.max_new_tokens, seed: c.seed, stop_token_ids: parseStopIds(c.stop_token_ids) },
  };
  if (judge.kind === 'pointwise') out.scores = Object.fromEntries([...scores].map(([k, v]) => [k, estimate(v)])) as Record<string, Estimate>;
  return out;
}

// ------------------------------------------------------------------------------------------------ the command

export async function runCompare(argv: readonly string[]): Promise<number> {
  const c = await resolveCommandOptions('compare', USAGE, argv, COMPARE_OPTIONS, { allowConfig: true, aliases: TRAIN_ALIASES });
  if (c === null) return 0;
  return (await compareMethods(c)).runs.length > 0 ? 0 : 1;
}

/** The whole comparison after option parsing (also the library entry for experiments). */
export async function compareMethods(c: CompareConfig, say: (s: string) => void = (s) => process.stderr.write(`compare: ${s}\n`)): Promise<CompareResults> {
  const methods = parseMethods(c.methods);
  if (c.output_dir === null) throw new OptionError("missing required option 'output_dir' (--output-dir)");
  if (c.model === null || c.dataset === null) throw new OptionError('orpo compare needs --model DIR and --dataset FILE');
  const outDir = c.output_dir;
  const model = c.model;
  const dataset = c.dataset;
  if (c.eval_dataset === null && c.eval_split_ratio === 0) {
    c = { ...c, eval_split_ratio: 0.1 };
    say('no eval_dataset: holding out 10% of the pairs (eval_split_ratio 0.1), the same pairs for every method');
  }
  if (c.eval_steps === null && c.max_steps > 0) c = { ...c, eval_steps: Math.max(1, Math.ceil(c.max_steps / 10)) };
  const dirOf = (name: string): string => join(outDir, name);
  // every run's options, checked before anything trains
  const configs = new Map<string, TrainConfig>();
  for (const m of methods) {
    if (m === 'sft+dpo') {
      configs.set('sft', runConfig(c, 'sft', dirOf('sft'), model));
      const start = c.lora_r === null ? dirOf('sft') : dirOf('sft-merged');
      configs.set('sft+dpo', runConfig(c, 'dpo', dirOf('sft+dpo'), start));
    } else configs.set(m, runConfig(c, m, dirOf(m), model));
  }
  for (const [name, cfg] of configs) {
    try {
      validateTrainConfig(cfg);
    } catch (e) {
      throw new OptionError(`${name}: ${(e as Error).message}`);
    }
  }
  // a judge that cannot be used is found before anything trains
  const judge = c.judge === null ? null : await loadJudge(c.judge);
  if (c.judge_prompts !== null && !existsSync(c.judge_prompts)) throw new OptionError(`--judge-prompts ${c.judge_prompts}: no such file`);
  parseStopIds(c.stop_token_ids);
  await mkdir(outDir, { recursive: true });

  const finished = new Map<string, FinishedRun>();
  const train = async (name: string): Promise<FinishedRun> => {
    let run = finished.get(name);
    if (run === undefined) {
      run = await trainOnce(outDir, name, configs.get(name)!, say);
      finished.set(name, run);
    }
    return run;
  };
  const runs: MethodRun[] = [];
  for (const m of methods) {
    if (m !== 'sft+dpo') {
      runs.push(methodRun(m, [await train(m)]));
      continue;
    }
    const sft = await train('sft');
    if (c.lora_r !== null && !existsSync(join(dirOf('sft-merged'), 'config.json'))) {
      await runChild(['merge', '--base', model, '--adapter', dirOf('sft'), '--out', dirOf('sft-merged')], 'merging the SFT adapter');
    }
    runs.push(methodRun(m, [sft, await train('sft+dpo')]));
  }
  const first = finished.values().next().value!;

  let judged: JudgeResults | null = null;
  const tokenizer = await loadTokenizer(model);
  if (judge !== null) {
    const all = c.judge_prompts !== null ? await promptsFromFile(c.judge_prompts, tokenizer) : promptsFromPairs(await heldOutPairs(c, dataset, tokenizer), tokenizer);
    const prompts = all.slice(0, c.judge_max_prompts);
    say(`judging ${prompts.length} prompts with ${c.judge} (${judge.kind})`);
    const contestants = [{ name: 'base', dir: model }, ...runs.map((r) => ({ name: r.name, dir: r.dir }))];
    judged = await judgeAll(c, judge, contestants, prompts, tokenizer, outDir, say);
  }

  const results: CompareResults = {
    model, dataset, eval_pairs: first.summary.eval_samples, train_pairs: first.summary.train_samples, methods, runs, judge: judged,
    notes: [
      'eval_mean_logps/chosen and /rejected: mean log-prob per response token on the held-out pairs, the same measure for every method',
      'eval_mean_logps/accuracy: share of held-out pairs whose chosen response has the higher mean log-prob; /margin: mean of the difference',
      'forward_tokens: real tokens run through the policy (training and evaluation); reference_forward_tokens: through a reference model',
      'win rates: (wins + ties / 2) / prompts, 95% interval by the normal approximation over prompts',
    ],
  };
  await writeFileAtomically(join(outDir, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  const { renderCompareSummary, writeCompareReport } = await import('./compare-report.js');
  await writeFileAtomically(join(outDir, 'summary.md'), renderCompareSummary(results));
  const html = await writeCompareReport(outDir, results, { ...c });
  say(`results: ${join(outDir, 'results.json')}, ${join(outDir, 'summary.md')}, ${html}`);
  process.stdout.write(renderCompareSummary(results));
  return results;
}
