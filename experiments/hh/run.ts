// Two findings of the ORPO paper (Hong, Lee, Thorne 2024) at small scale, on real data and a real model:
//
//   (a) Figures 3 / 7: supervised fine-tuning on the chosen responses raises the log-probabilities of the rejected
//       responses too; ORPO raises chosen and pushes rejected down.
//   (b) Figure 9 (the λ ablation): ORPO with λ ∈ {0.1, 0.5, 1.0} (SFT = λ 0 for reference): how far rejected falls
//       and how the margin grows with λ.
//
// Model: stories260K (../shared/models, a pretrained 260k-parameter Llama that knows only TinyStories). Data: the
// Anthropic HH-RLHF harmless-base test split (../shared/data, 2,312 chosen/rejected transcripts, implicit prompt).
//
// 1. split the transcripts (seeded, grouped by their first Human turn so no conversation opening is in two parts)
//    into a held-out part (evaluation only), a preference part (the pairs every method trains on) and a domain
//    part (the rest);
// 2. domain adaptation, once: `orpo train --method sft --completion-only-loss false` on the domain part's
//    transcripts, each pair given twice (chosen and rejected each as the SFT target once), so the starting model
//    has read HH dialogues ("\n\nHuman: ...\n\nAssistant: ...") of both kinds and no preference between them;
// 3. (a) `orpo compare --methods sft,orpo` from the domain model; (b) `orpo compare --methods orpo --orpo-beta λ`
//    for the other λ values, reusing (a)'s SFT and ORPO runs. Same data, order, steps, learning rate and seed for
//    every run; SFT's loss covers the response tokens (completion_only_loss) and so does ORPO's NLL term
//    (--sft-scope response), so ORPO at λ = 0 is exactly SFT;
// 4. the held-out curves come from compare (eval_mean_logps/*: mean log-prob per response token); the same
//    measure on a fixed subset of the training pairs ("seen pairs") is computed here from the runs' checkpoints;
// 5. charts (SVG, Vega-Lite rendered in Node) and RESULTS.md.
//
//   node dist/experiments/hh/run.js [--quick] [--out DIR] [--runs DIR] [--only a|b] [--threads N]
//                                   [--steps N] [--lr X] [--lambda-a X]
//   node dist/experiments/hh/run.js --render [--out DIR]     (RESULTS.md again from results/results.json)
//
// Without --out the full run writes experiments/hh/RESULTS.md and experiments/hh/results/ (SVGs, results.json);
// --quick (a few pairs and steps, max_length 64: a check of the pipeline, not of the findings) writes to a fresh
// temporary folder unless --out is given. Training folders (weights, checkpoints) go to --runs (default: <out>/runs
// when --out is given, else /tmp/orpo-hh-runs), never into the repository.
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { gunzipSync } from 'node:zlib';
import {
  createObjective, DEFAULT_DATA_OPTIONS, evaluatePairs, loadModel, loadPreferencePairs, loadTokenizer, padTokenIdOf, Rng,
} from '../../src/index.js';
import { commonTextPrefix } from '../../src/data/formats.js';
import { encodePrompt } from '../../src/data/tokenize.js';
import { generateText } from '../../src/cli/generate.js';
import { overlaySpec, renderSpecSvg, type OverlaySeries } from '../../src/report/charts.js';

export const repoRoot = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const MAIN = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
const HH_FILE = 'hh-rlhf-harmless-base-test.jsonl.gz';

export function sharedRoot(): string | null {
  const dir = process.env.ORPO_SHARED_DIR ?? join(repoRoot, '..', 'shared');
  return existsSync(join(dir, 'models', 'stories260K', 'config.json')) && existsSync(join(dir, 'data', HH_FILE)) ? dir : null;
}

// ------------------------------------------------------------------------------------------------ settings

export interface Settings {
  /** pairs held out for evaluation, pairs for preference training; the domain part takes the rest (or at most this) */
  evalPairs: number;
  trainPairs: number;
  domainPairs: number | null;
  /** the first this many preference pairs, evaluated again from the checkpoints ("seen pairs") */
  seenPairs: number;
  maxLength: number;
  maxPromptLength: number;
  batch: number;
  evalBatch: number;
  seed: number;
  /** domain adaptation: SFT on prompt + response, both responses of each domain pair */
  domain: { epochs: number; maxSteps: number; lr: number; evalSteps: number };
  /** preference training: every method */
  pref: { maxSteps: number; lr: number; warmupRatio: number; evalSteps: number; saveSteps: number };
  /** λ of (a)'s ORPO run, and the λ values of (b) */
  lambdaA: number;
  lambdas: number[];
  /** greedy tokens of the before/after-domain sample */
  sampleTokens: number;
}

export const FULL: Settings = {
  evalPairs: 250, trainPairs: 1000, domainPairs: null, seenPairs: 200,
  maxLength: 192, maxPromptLength: 144, batch: 8, evalBatch: 16, seed: 42,
  domain: { epochs: 1, maxSteps: -1, lr: 2e-3, evalSteps: 50 },
  pref: { maxSteps: 250, lr: 5e-4, warmupRatio: 0.1, evalSteps: 25, saveSteps: 50 },
  lambdaA: 1.0, lambdas: [0.1, 0.5, 1.0], sampleTokens: 48,
};

export const QUICK: Settings = {
  evalPairs: 12, trainPairs: 24, domainPairs: 24, seenPairs: 8,
  maxLength: 64, maxPromptLength: 48, batch: 4, evalBatch: 12, seed: 42,
  domain: { epochs: 1, maxSteps: 4, lr: 2e-3, evalSteps: 2 },
  pref: { maxSteps: 4, lr: 2e-3, warmupRatio: 0.1, evalSteps: 2, saveSteps: 2 },
  lambdaA: 1.0, lambdas: [0.1, 1.0], sampleTokens: 8,
};

/** the dialogue prompt of the before/after-domain sample (a harmless question in the HH format) */
const SAMPLE_PROMPT = '\n\nHuman: What is a good way to spend a rainy afternoon?\n\nAssistant:';

// ------------------------------------------------------------------------------------------------ data

interface HhRow { chosen: string; rejected: string }

export interface SplitStats {
  rows: number;
  unusable: number;
  groups: number;
  eval: number;
  train: number;
  domain: number;
  domainRows: number;
  seen: number;
}

/** The response of a row is empty (one transcript is the other plus more): the data layer drops such rows. */
function usable(r: HhRow): boolean {
  const i = commonTextPrefix(r.chosen, r.rejected);
  return i > 0 && r.chosen.slice(i).trim() !== '' && r.rejected.slice(i).trim() !== '';
}

/** the conversation's opening: its first Human turn (the split keeps each opening in one part) */
const openingOf = (r: HhRow): string => r.chosen.split('\n\nAssistant:')[0]!;

export function splitHh(file: string, s: Settings, outDir: string): SplitStats {
  const rows = gunzipSync(readFileSync(file)).toString('utf8').split('\n').filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as HhRow);
  const good = rows.filter(usable);
  const groups = new Map<string, HhRow[]>();
  for (const r of good) {
    const k = openingOf(r);
    const g = groups.get(k);
    if (g === undefined) groups.set(k, [r]);
    else g.push(r);
  }
  const keys = new Rng(s.seed).shuffle([...groups.keys()]);
  const parts: { eval: HhRow[]; train: HhRow[]; domain: HhRow[] } = { eval: [], train: [], domain: [] };
  for (const k of keys) {
    const g = groups.get(k)!;
    if (parts.eval.length < s.evalPairs) parts.eval.push(...g);
    else if (parts.train.length < s.trainPairs) parts.train.push(...g);
    else if (s.domainPairs === null || parts.domain.length < s.domainPairs) parts.domain.push(...g);
  }
  mkdirSync(outDir, { recursive: true });
  const write = (name: string, rs: readonly HhRow[]): void =>
    writeFileSync(join(outDir, name), rs.map((r) => JSON.stringify({ chosen: r.chosen, rejected: r.rejected })).join('\n') + '\n');
  write('eval.jsonl', parts.eval);
  write('train.jsonl', parts.train);
  write('seen.jsonl', parts.train.slice(0, s.seenPairs));
  // each domain transcript once as the SFT target: (chosen, rejected) and (rejected, chosen)
  const domainRows = parts.domain.flatMap((r) => [r, { chosen: r.rejected, rejected: r.chosen }]);
  write('domain.jsonl', domainRows);
  return {
    rows: rows.length, unusable: rows.length - good.length, groups: groups.size, eval: parts.eval.length,
    train: parts.train.length, domain: parts.domain.length, domainRows: domainRows.length, seen: Math.min(s.seenPairs, parts.train.length),
  };
}

export interface FileStats {
  file: string;
  rows: number;
  used: number;
  dropped: number;
  truncatedPrompt: number;
  truncatedResponse: number;
  /** mean tokens after truncation: prompt, chosen, rejected (each response with its EOS) */
  promptTokens: number;
  chosenTokens: number;
  rejectedTokens: number;
}

/** what the data layer makes of a split file at the run's lengths (as `orpo data stats` reports it) */
async function fileStats(modelDir: string, file: string, s: Settings): Promise<FileStats> {
  const tokenizer = await loadTokenizer(modelDir);
  const { pairs, stats } = await loadPreferencePairs(file, tokenizer, { ...DEFAULT_DATA_OPTIONS, maxLength: s.maxLength, maxPromptLength: s.maxPromptLength });
  const mean = (f: (p: (typeof pairs)[number]) => number): number => pairs.reduce((a, p) => a + f(p), 0) / Math.max(1, pairs.length);
  return {
    file: file.split('/').pop()!, rows: stats.rowsRead, used: stats.rowsUsed, dropped: stats.rowsRead - stats.rowsUsed,
    truncatedPrompt: stats.truncatedPrompt, truncatedResponse: stats.truncatedResponse,
    promptTokens: mean((p) => p.prompt.length), chosenTokens: mean((p) => p.chosen.length), rejectedTokens: mean((p) => p.rejected.length),
  };
}

// ------------------------------------------------------------------------------------------------ running the CLI

interface Ctx {
  s: Settings;
  runs: string;
  out: string;
  threads: number;
  model: string;
  logs: string;
  /** every command run or reused, for RESULTS.md */
  commands: { what: string; argv: string[]; seconds: number | null }[];
}

const show = (ctx: Ctx, p: string): string => {
  const rel = relative(repoRoot, p);
  return !rel.startsWith('..') || rel.startsWith('../shared/') ? rel : p;
};

export function commandLine(ctx: Ctx, argv: readonly string[]): string {
  const quote = (a: string): string => (/^[\w./=,:+-]+$/.test(a) ? a : `'${a}'`);
  return ['node', 'dist/src/cli/main.js', ...argv.map((a) => quote(a.startsWith('/') ? show(ctx, a) : a))].join(' ');
}

async function runCli(ctx: Ctx, what: string, argv: string[]): Promise<number> {
  mkdirSync(ctx.logs, { recursive: true });
  const logFile = join(ctx.logs, `${what.replace(/[^\w.-]+/g, '_')}.log`);
  process.stderr.write(`hh: ${what}: ${commandLine(ctx, argv)}\n`);
  const started = performance.now();
  const log = createWriteStream(logFile);
  const code = await new Promise<number>((done, fail) => {
    const child = spawn(process.execPath, [MAIN, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    child.on('error', fail);
    child.on('close', (c, sig) => done(c ?? (sig !== null ? 128 : 1)));
  });
  await new Promise<void>((done) => log.end(done));
  const seconds = (performance.now() - started) / 1000;
  if (code !== 0) {
    const tail = readFileSync(logFile, 'utf8').split('\n').slice(-25).join('\n');
    throw new Error(`${what} failed (exit ${code}); the end of ${logFile}:\n${tail}`);
  }
  ctx.commands.push({ what, argv, seconds });
  process.stderr.write(`hh: ${what}: done in ${seconds.toFixed(1)} s\n`);
  return seconds;
}

// ------------------------------------------------------------------------------------------------ the steps

const dataArgs = (s: Settings): string[] => [
  '--max-length', String(s.maxLength), '--max-prompt-length', String(s.maxPromptLength),
  '--per-device-train-batch-size', String(s.batch), '--per-device-eval-batch-size', String(s.evalBatch), '--seed', String(s.seed),
];

function domainArgs(ctx: Ctx): string[] {
  const { s, runs } = ctx;
  return [
    'train', '--method', 'sft', '--completion-only-loss', 'false',
    '--model', ctx.model, '--dataset', join(runs, 'data', 'domain.jsonl'), '--eval-dataset', join(runs, 'data', 'eval.jsonl'),
    '--output-dir', join(runs, 'domain'),
    ...(s.domain.maxSteps > 0 ? ['--max-steps', String(s.domain.maxSteps)] : ['--num-train-epochs', String(s.domain.epochs)]),
    '--learning-rate', String(s.domain.lr), '--lr-scheduler-type', 'cosine', '--warmup-ratio', '0.05',
    ...dataArgs(s), '--eval-steps', String(s.domain.evalSteps), '--logging-steps', String(s.domain.evalSteps),
    '--save-steps', '0', '--report', 'false', '--threads', String(ctx.threads),
  ];
}

/** The domain model, trained once (reused when its folder holds a finished run with the same command). */
async function domainModel(ctx: Ctx): Promise<string> {
  const dir = join(ctx.runs, 'domain');
  const argv = domainArgs(ctx);
  // the command with the runs folder left out, so a copied runs folder is reused too
  const stamp = join(ctx.runs, 'domain.command.json');
  const key = JSON.stringify(argv.map((a) => a.split(ctx.runs).join('<runs>')));
  const same = existsSync(stamp) && readFileSync(stamp, 'utf8') === key && finished(dir);
  if (same) {
    process.stderr.write(`hh: domain SFT: reusing ${dir} (same command)\n`);
    ctx.commands.push({ what: 'domain SFT', argv, seconds: null });
  } else {
    await runCli(ctx, 'domain SFT', argv);
    writeFileSync(stamp, key);
  }
  return dir;
}

function finished(dir: string): boolean {
  const f = join(dir, 'train_results.json');
  return existsSync(f) && (JSON.parse(readFileSync(f, 'utf8')) as { interrupted?: boolean }).interrupted === false;
}

function compareArgs(ctx: Ctx, domain: string, dir: string, methods: string, lambda: number): string[] {
  const { s, runs } = ctx;
  return [
    'compare', '--methods', methods, '--orpo-beta', String(lambda),
    '--model', domain, '--dataset', join(runs, 'data', 'train.jsonl'), '--eval-dataset', join(runs, 'data', 'eval.jsonl'),
    '--output-dir', dir, '--max-steps', String(s.pref.maxSteps), '--learning-rate', String(s.pref.lr),
    '--warmup-ratio', String(s.pref.warmupRatio), '--completion-only-loss', 'true', '--sft-scope', 'response',
    ...dataArgs(s), '--eval-steps', String(s.pref.evalSteps), '--save-steps', String(s.pref.saveSteps),
    '--report', 'false', '--threads', String(ctx.threads),
  ];
}

// ------------------------------------------------------------------------------------------------ measuring

export interface Point {
  step: number;
  chosen: number;
  rejected: number;
  margin: number;
  accuracy: number;
}

export interface RunCurves {
  /** sft, or orpo λ=x */
  name: string;
  method: 'sft' | 'orpo';
  /** λ (SFT: 0) */
  lambda: number;
  dir: string;
  wallSeconds: number;
  heldOut: Point[];
  seen: Point[];
}

interface CompareRun { name: string; dir: string; wall_seconds: number; curve: Record<string, number>[] }

function heldOutCurve(curve: readonly Record<string, number>[]): Point[] {
  return curve.filter((p) => p['eval_mean_logps/chosen'] !== undefined).map((p) => ({
    step: p['step']!, chosen: p['eval_mean_logps/chosen']!, rejected: p['eval_mean_logps/rejected']!,
    margin: p['eval_mean_logps/margin']!, accuracy: p['eval_mean_logps/accuracy']!,
  }));
}

/**
 * The method-neutral measure (mean log-prob per response token, averaged over pairs; accuracy = share of pairs whose
 * chosen response has the higher mean log-prob; margin = mean difference) of a model folder on a set of pairs: the
 * same numbers as the trainer's eval_mean_logps/* (checked on the held-out pairs by the test).
 */
export async function neutralMetrics(modelDir: string, dataFile: string, s: Settings, threads: number): Promise<Omit<Point, 'step'>> {
  const tokenizer = await loadTokenizer(modelDir);
  const { pairs } = await loadPreferencePairs(dataFile, tokenizer, { ...DEFAULT_DATA_OPTIONS, maxLength: s.maxLength, maxPromptLength: s.maxPromptLength });
  const model = await loadModel(modelDir);
  model.kernels.setThreads(threads);
  const r = await evaluatePairs(model, pairs, { objective: createObjective({ method: 'sft' }), batchSize: s.evalBatch, padTokenId: padTokenIdOf(tokenizer) });
  let c = 0;
  let rj = 0;
  let wins = 0;
  for (let i = 0; i < pairs.length; i++) {
    c += r.logpsChosen[i]!;
    rj += r.logpsRejected[i]!;
    if (r.logpsChosen[i]! > r.logpsRejected[i]!) wins++;
  }
  const n = pairs.length;
  return { chosen: c / n, rejected: rj / n, margin: (c - rj) / n, accuracy: wins / n };
}

/** the seen-pairs curve of one run: the starting model, every checkpoint, the final model */
async function seenCurve(ctx: Ctx, runDir: string, start: Omit<Point, 'step'>, finalStep: number): Promise<Point[]> {
  const seen = join(ctx.runs, 'data', 'seen.jsonl');
  const points: Point[] = [{ step: 0, ...start }];
  const checkpoints = readdirSync(runDir).filter((d) => /^checkpoint-\d+$/.test(d)).map((d) => Number(d.slice('checkpoint-'.length)))
    .filter((n) => n < finalStep).sort((a, b) => a - b);
  for (const step of checkpoints) points.push({ step, ...await neutralMetrics(join(runDir, `checkpoint-${step}`), seen, ctx.s, ctx.threads) });
  points.push({ step: finalStep, ...await neutralMetrics(runDir, seen, ctx.s, ctx.threads) });
  return points;
}

async function runCurves(ctx: Ctx, run: CompareRun, lambda: number, seenStart: Omit<Point, 'step'>): Promise<RunCurves> {
  const heldOut = heldOutCurve(run.curve);
  const finalStep = heldOut[heldOut.length - 1]?.step ?? ctx.s.pref.maxSteps;
  const method = run.name === 'sft' ? 'sft' : 'orpo';
  return {
    name: method === 'sft' ? 'SFT' : `ORPO λ=${lambda}`, method, lambda: method === 'sft' ? 0 : lambda, dir: run.dir,
    wallSeconds: run.wall_seconds, heldOut, seen: await seenCurve(ctx, run.dir, seenStart, finalStep),
  };
}

// ------------------------------------------------------------------------------------------------ charts

export interface ChartFile { file: string; title: string; series: string[] }

async function writeChart(ctx: Ctx, id: string, title: string, yTitle: string, series: OverlaySeries[]): Promise<ChartFile> {
  const dir = join(ctx.out, 'results');
  mkdirSync(dir, { recursive: true });
  const svg = await renderSpecSvg(overlaySpec(title, yTitle, series));
  const file = join(dir, `${id}.svg`);
  writeFileSync(file, svg);
  return { file, title, series: series.map((s) => s.label) };
}

const seriesOf = (label: string, points: readonly Point[], key: keyof Omit<Point, 'step'>): OverlaySeries =>
  ({ label, points: points.map((p) => ({ step: p.step, value: p[key] })) });

async function chartsA(ctx: Ctx, sft: RunCurves, orpo: RunCurves): Promise<ChartFile[]> {
  const four = (view: 'heldOut' | 'seen'): OverlaySeries[] => [
    seriesOf(`${sft.name} chosen`, sft[view], 'chosen'), seriesOf(`${sft.name} rejected`, sft[view], 'rejected'),
    seriesOf(`${orpo.name} chosen`, orpo[view], 'chosen'), seriesOf(`${orpo.name} rejected`, orpo[view], 'rejected'),
  ];
  return [
    await writeChart(ctx, 'a-heldout-logps', `(a) held-out pairs: mean log-prob per response token, ${sft.name} vs ${orpo.name}`, 'log p per token', four('heldOut')),
    await writeChart(ctx, 'a-seen-logps', `(a) seen (training) pairs: mean log-prob per response token, ${sft.name} vs ${orpo.name}`, 'log p per token', four('seen')),
    await writeChart(ctx, 'a-margin', '(a) margin: mean log p(chosen) − mean log p(rejected)', 'margin', [
      seriesOf(`${sft.name} held-out`, sft.heldOut, 'margin'), seriesOf(`${orpo.name} held-out`, orpo.heldOut, 'margin'),
      seriesOf(`${sft.name} seen`, sft.seen, 'margin'), seriesOf(`${orpo.name} seen`, orpo.seen, 'margin'),
    ]),
  ];
}

async function chartsB(ctx: Ctx, runs: readonly RunCurves[]): Promise<ChartFile[]> {
  const label = (r: RunCurves): string => (r.method === 'sft' ? 'λ=0 (SFT)' : `λ=${r.lambda}`);
  const per = (view: 'heldOut' | 'seen', key: 'chosen' | 'rejected' | 'margin'): OverlaySeries[] => runs.map((r) => seriesOf(label(r), r[view], key));
  return [
    await writeChart(ctx, 'b-heldout-rejected', '(b) held-out rejected responses: mean log-prob per token, by λ', 'log p per token', per('heldOut', 'rejected')),
    await writeChart(ctx, 'b-heldout-margin', '(b) held-out margin (chosen − rejected mean log-prob), by λ', 'margin', per('heldOut', 'margin')),
    await writeChart(ctx, 'b-heldout-chosen', '(b) held-out chosen responses: mean log-prob per token, by λ', 'log p per token', per('heldOut', 'chosen')),
    await writeChart(ctx, 'b-seen-rejected', '(b) seen pairs, rejected responses: mean log-prob per token, by λ', 'log p per token', per('seen', 'rejected')),
    await writeChart(ctx, 'b-seen-margin', '(b) seen pairs, margin (chosen − rejected mean log-prob), by λ', 'margin', per('seen', 'margin')),
    await writeChart(ctx, 'b-seen-chosen', '(b) seen pairs, chosen responses: mean log-prob per token, by λ', 'log p per token', per('seen', 'chosen')),
  ];
}

// ------------------------------------------------------------------------------------------------ the report

const f4 = (x: number): string => (Number.isFinite(x) ? x.toFixed(4) : String(x));
const f3 = (x: number): string => (Number.isFinite(x) ? x.toFixed(3) : String(x));
const signed = (x: number): string => `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(4)}`;
const mdTable = (rows: readonly string[][]): string =>
  [`| ${rows[0]!.join(' | ')} |`, `|${rows[0]!.map(() => '---').join('|')}|`, ...rows.slice(1).map((r) => `| ${r.join(' | ')} |`)].join('\n');

function runTable(runs: readonly RunCurves[], view: 'heldOut' | 'seen'): string {
  const rows = [['run', 'chosen start', 'chosen end', 'Δ chosen', 'rejected start', 'rejected end', 'Δ rejected', 'accuracy start → end', 'margin start → end']];
  for (const r of runs) {
    const a = r[view][0]!;
    const b = r[view][r[view].length - 1]!;
    rows.push([r.name, f4(a.chosen), f4(b.chosen), signed(b.chosen - a.chosen), f4(a.rejected), f4(b.rejected), signed(b.rejected - a.rejected),
      `${f3(a.accuracy)} → ${f3(b.accuracy)}`, `${f4(a.margin)} → ${f4(b.margin)}`]);
  }
  return mdTable(rows);
}

export interface Results {
  quick: boolean;
  settings: Settings;
  split: SplitStats;
  files: FileStats[];
  domain: { base: Omit<Point, 'step'>; adapted: Omit<Point, 'step'>; seenBase: Omit<Point, 'step'>; seenAdapted: Omit<Point, 'step'>;
    sampleBase: string; sampleAdapted: string; wallSeconds: number | null; steps: number };
  a: { sft: RunCurves; orpo: RunCurves } | null;
  b: RunCurves[] | null;
  charts: ChartFile[];
  commands: { what: string; command: string; seconds: number | null }[];
  wallSeconds: number;
}

const end = (r: RunCurves, view: 'heldOut' | 'seen'): Point => r[view][r[view].length - 1]!;
const first = (r: RunCurves, view: 'heldOut' | 'seen'): Point => r[view][0]!;
const delta = (r: RunCurves, view: 'heldOut' | 'seen', key: 'chosen' | 'rejected' | 'margin'): number => end(r, view)[key] - first(r, view)[key];
const rises = (x: number): string => (x > 0 ? `rises (${signed(x)})` : `falls (${signed(x)})`);

/** sentences computed from the numbers (true of whatever run produced them) */
function findings(r: Results): string[] {
  const out: string[] = [];
  if (r.a !== null) {
    const { sft, orpo } = r.a;
    for (const view of ['heldOut', 'seen'] as const) {
      const where = view === 'heldOut' ? 'held-out pairs' : 'seen (training) pairs';
      out.push(`On the ${where}, under SFT the chosen log-prob ${rises(delta(sft, view, 'chosen'))} and the rejected log-prob ${rises(delta(sft, view, 'rejected'))}; ` +
        `under ${orpo.name} chosen ${rises(delta(orpo, view, 'chosen'))} and rejected ${rises(delta(orpo, view, 'rejected'))}. ` +
        `Margin at the end: SFT ${f4(end(sft, view).margin)}, ${orpo.name} ${f4(end(orpo, view).margin)} (start ${f4(first(sft, view).margin)}); ` +
        `accuracy ${f3(end(sft, view).accuracy)} vs ${f3(end(orpo, view).accuracy)} (start ${f3(first(sft, view).accuracy)}).`);
    }
  }
  if (r.b !== null) {
    for (const view of ['heldOut', 'seen'] as const) {
      const where = view === 'heldOut' ? 'held-out' : 'seen';
      out.push(`By λ (${where}): Δ rejected ${r.b.map((x) => `${x.lambda}: ${signed(delta(x, view, 'rejected'))}`).join(', ')}; ` +
        `Δ chosen ${r.b.map((x) => `${x.lambda}: ${signed(delta(x, view, 'chosen'))}`).join(', ')}; ` +
        `end margin ${r.b.map((x) => `${x.lambda}: ${f4(end(x, view).margin)}`).join(', ')}.`);
    }
  }
  return out;
}

/** the answer in three sentences, for the top of RESULTS.md (full runs only) */
function inShort(r: Results): string {
  if (r.quick || r.a === null || r.b === null) return '';
  const { sft, orpo } = r.a;
  const b = r.b;
  return `**In short.** SFT raises the held-out rejected log-prob almost as much as the chosen one (${signed(delta(sft, 'heldOut', 'rejected'))} vs ` +
    `${signed(delta(sft, 'heldOut', 'chosen'))} per token): reproduced. ${orpo.name} raises chosen and pushes rejected down on the pairs it ` +
    `trains on (${signed(delta(orpo, 'seen', 'chosen'))} / ${signed(delta(orpo, 'seen', 'rejected'))}; SFT ${signed(delta(sft, 'seen', 'chosen'))} / ` +
    `${signed(delta(sft, 'seen', 'rejected'))}), and the larger λ the further rejected falls and the wider the margin there (λ = ` +
    `${b.map((x) => x.lambda).join(', ')}: margin ${b.map((x) => f4(end(x, 'seen').margin)).join(', ')}); but on held-out pairs this tiny model ` +
    `lowers chosen as much as rejected (${orpo.name}: ${signed(delta(orpo, 'heldOut', 'chosen'))} / ${signed(delta(orpo, 'heldOut', 'rejected'))}), ` +
    'so the held-out margin does not grow with λ: the preference does not generalise at this scale.';
}

function renderResults(r: Results, discussion: string): string {
  const s = r.settings;
  const short = inShort(r);
  const rel = (p: string): string => `results/${p.split('/').pop()}`;
  const chart = (id: string): string => {
    const c = r.charts.find((x) => x.file.endsWith(`/${id}.svg`));
    return c === undefined ? '' : `![${c.title}](${rel(c.file)})`;
  };
  const d = r.domain;
  const parts: string[] = [
    '# ORPO paper, Figures 3/7 and 9, at small scale: stories260K on HH-RLHF harmless-base',
    '',
    r.quick ? '**Quick run** (a check of the pipeline: a few pairs and steps; the numbers below are noise, not findings).\n' : '',
    'Reproduces, at a scale that runs on two CPU cores in about ten minutes, two findings of Hong, Lee, Thorne (2024),',
    '*ORPO: Monolithic Preference Optimization without Reference Model*:',
    '',
    '- **(a)** (Figures 3 and 7): SFT on the chosen responses raises the log-probabilities of the',
    '  rejected responses too; ORPO raises chosen and pushes rejected down.',
    '- **(b)** (Figure 9, the λ ablation): the larger λ, the further rejected falls and the wider the margin.',
    '',
    ...(short === '' ? [] : [short, '']),
    `Regenerate everything (${(r.wallSeconds / 60).toFixed(1)} min here): \`npm run build && node dist/experiments/hh/run.js\` ` +
      '(`--quick` for a sub-minute check of the pipeline; `--only a|b`; training folders go to `/tmp/orpo-hh-runs`).',
    '',
    '## Setup',
    '',
    `- **Model**: \`../shared/models/stories260K\` (a pretrained Llama, 260k parameters, vocabulary 512, trained on TinyStories only).`,
    `- **Data**: \`../shared/data/${HH_FILE}\`: ${r.split.rows} transcripts (${r.split.unusable} unusable: one response empty after the shared prefix), ` +
      `grouped by their first Human turn (${r.split.groups} openings; a repeated opening stays in one part) and split with seed ${s.seed} into ` +
      `**held-out** ${r.split.eval} pairs (evaluation only), **preference** ${r.split.train} pairs (what every method trains on; the first ${r.split.seen} are ` +
      `also evaluated from the checkpoints as the "seen pairs") and **domain** ${r.split.domain} pairs (domain adaptation only).`,
    `- **Lengths**: max_length ${s.maxLength}, max_prompt_length ${s.maxPromptLength} (TRL truncation: a too long prompt keeps its end, so the model sees the last turns ` +
      'and the final "\\n\\nAssistant:"; a response is cut to what the prompt leaves). The tokenizer (512-token BPE with byte fallback) makes HH text long: ' +
      'untruncated, prompt + longer response is 356 tokens at the median (`orpo data stats` on the whole file). What the data layer makes of the split files at these lengths:',
    '',
    mdTable([
      ['file', 'rows', 'used', 'prompt cut', 'response cut', 'mean prompt tokens', 'mean chosen tokens', 'mean rejected tokens'],
      ...r.files.map((x) => [x.file, String(x.rows), String(x.used), String(x.truncatedPrompt), String(x.truncatedResponse),
        x.promptTokens.toFixed(1), x.chosenTokens.toFixed(1), x.rejectedTokens.toFixed(1)]),
    ]),
    '',
    `- **Domain adaptation** (once, shared by (a) and (b)): SFT of stories260K on the domain part, prompt and response tokens both in the loss ` +
      '(`--completion-only-loss false`), every transcript of a pair as a target once (the file holds each pair twice, chosen and rejected swapped), ' +
      `so the starting model has read HH dialogues of both kinds and prefers neither. ${d.steps} steps, batch ${s.batch}, learning rate ${s.domain.lr}, cosine.`,
    `- **Preference training** (every run): ${s.pref.maxSteps} optimizer steps of ${s.batch} pairs (${((s.pref.maxSteps * s.batch) / r.split.train).toFixed(1)} epochs ` +
      `of the ${r.split.train} pairs, the same order for every run), AdamW, peak learning rate ${s.pref.lr}, ${s.pref.warmupRatio * 100}% warm-up then linear decay, ` +
      `gradient clipping 1.0, seed ${s.seed}. SFT's loss covers the response tokens only (TRL SFTTrainer's completion_only_loss) and so does ORPO's NLL term ` +
      '(`--sft-scope response`; TRL\'s ORPO also puts the prompt in it), so ORPO is exactly SFT plus λ times the odds-ratio term, and λ = 0 is SFT.',
    `- **Measure** (the same for every method): mean log-prob per response token of the chosen and the rejected response, averaged over pairs; ` +
      'accuracy = share of pairs whose chosen response has the higher mean log-prob; margin = mean of the difference. Held-out: compare\'s ' +
      `\`eval_mean_logps/*\` every ${s.pref.evalSteps} steps; seen pairs: the same measure of the checkpoints (every ${s.pref.saveSteps} steps).`,
    '',
    '## Commands',
    '',
    'Run by `experiments/hh/run.ts`, in this order (a finished run with the same options is reused):',
    '',
    '```sh',
    ...r.commands.map((c) => `# ${c.what}${c.seconds === null ? ' (reused)' : ` (${c.seconds.toFixed(0)} s)`}\n${c.command}`),
    '```',
    '',
    '## The starting model knows the domain',
    '',
    mdTable([
      ['model', 'held-out chosen', 'held-out rejected', 'accuracy', 'margin', 'seen chosen', 'seen rejected'],
      ['stories260K', f4(d.base.chosen), f4(d.base.rejected), f3(d.base.accuracy), f4(d.base.margin), f4(d.seenBase.chosen), f4(d.seenBase.rejected)],
      ['after domain SFT', f4(d.adapted.chosen), f4(d.adapted.rejected), f3(d.adapted.accuracy), f4(d.adapted.margin), f4(d.seenAdapted.chosen), f4(d.seenAdapted.rejected)],
    ]),
    '',
    `Greedy continuation of \`${JSON.stringify(SAMPLE_PROMPT)}\` (${s.sampleTokens} tokens):`,
    '',
    `- stories260K: ${JSON.stringify(d.sampleBase)}`,
    `- after domain SFT: ${JSON.stringify(d.sampleAdapted)}`,
    '',
  ];
  if (r.a !== null) {
    parts.push(
      `## (a) SFT vs ORPO (λ = ${r.a.orpo.lambda})`, '',
      chart('a-heldout-logps'), '', chart('a-seen-logps'), '', chart('a-margin'), '',
      'Held-out pairs:', '', runTable([r.a.sft, r.a.orpo], 'heldOut'), '',
      'Seen (training) pairs:', '', runTable([r.a.sft, r.a.orpo], 'seen'), '',
    );
  }
  if (r.b !== null) {
    parts.push(
      '## (b) λ ablation', '',
      chart('b-heldout-rejected'), '', chart('b-heldout-margin'), '', chart('b-heldout-chosen'), '',
      chart('b-seen-rejected'), '', chart('b-seen-margin'), '', chart('b-seen-chosen'), '',
      'Held-out pairs:', '', runTable(r.b, 'heldOut'), '',
      'Seen (training) pairs:', '', runTable(r.b, 'seen'), '',
      mdTable([['run', 'wall s'], ...r.b.map((x) => [x.name, x.wallSeconds.toFixed(1)])]), '',
    );
  }
  parts.push('## What the numbers show', '', ...findings(r).map((x) => `- ${x}`), '');
  if (discussion !== '') parts.push(discussion, '');
  parts.push('The numbers behind every chart and table: `results/results.json`.', '');
  return parts.filter((p, i, a) => !(p === '' && a[i - 1] === '')).join('\n');
}

/**
 * The reading of the full run, kept here so RESULTS.md is regenerated whole: its numbers come from the run, its
 * words were written after the default run (lr 5e-4, 250 steps, seed 42) and are checked against the numbers where a
 * direction could differ. Empty for --quick, whose numbers are noise.
 */
function discussionOf(r: Results): string {
  if (r.quick || r.a === null || r.b === null) return '';
  const { sft, orpo } = r.a;
  const d = (x: RunCurves, view: 'heldOut' | 'seen', key: 'chosen' | 'rejected' | 'margin'): string => signed(delta(x, view, key));
  const m = (x: RunCurves, view: 'heldOut' | 'seen'): string => f4(end(x, view).margin);
  const acc = (x: RunCurves, view: 'heldOut' | 'seen'): string => f3(end(x, view).accuracy);
  const sftHeldRatio = delta(sft, 'heldOut', 'rejected') / delta(sft, 'heldOut', 'chosen');
  const lambdas = r.b;
  const seenRej = lambdas.map((x) => delta(x, 'seen', 'rejected'));
  const seenMargin = lambdas.map((x) => end(x, 'seen').margin);
  const heldMargin = lambdas.map((x) => end(x, 'heldOut').margin);
  const monotone = (xs: readonly number[], sign: 1 | -1): boolean => xs.every((x, i) => i === 0 || sign * (x - xs[i - 1]!) > 0);
  const lambdaList = lambdas.map((x) => x.lambda).join(', ');
  const at = (xs: readonly number[], fmt: (x: number) => string): string => xs.map(fmt).join(', ');
  const small = lambdas.find((x) => x.lambda === 0.1);
  const parts = [
    '### Reading',
    '',
    `**SFT raises the rejected responses too: reproduced.** On the held-out pairs SFT on the chosen responses raises the chosen ` +
      `log-prob by ${d(sft, 'heldOut', 'chosen')} and the rejected one by ${d(sft, 'heldOut', 'rejected')} per token ` +
      `(${(100 * sftHeldRatio).toFixed(0)}% as much): the paper's Figure 3 in miniature. Nothing in SFT tells the two apart, so held-out ` +
      `accuracy and margin hardly move (${f3(first(sft, 'heldOut').accuracy)} → ${acc(sft, 'heldOut')}, ${f4(first(sft, 'heldOut').margin)} → ${m(sft, 'heldOut')}). ` +
      `On the seen pairs, whose chosen texts SFT has been trained on, chosen rises much more (${d(sft, 'seen', 'chosen')}) than rejected ` +
      `(${d(sft, 'seen', 'rejected')}), but rejected still ${delta(sft, 'seen', 'rejected') > 0 ? 'rises' : 'does not fall'}: the shared prompt and the shared style carry it along.`,
    '',
    `**ORPO pushes rejected down on the pairs it trains on; on held-out pairs it lowers both.** On the seen pairs ${orpo.name} raises chosen ` +
      `(${d(orpo, 'seen', 'chosen')}) and lowers rejected (${d(orpo, 'seen', 'rejected')}), where SFT raised it; the margin ends at ${m(orpo, 'seen')} ` +
      `(SFT ${m(sft, 'seen')}) and accuracy at ${acc(orpo, 'seen')} (SFT ${acc(sft, 'seen')}). On the held-out pairs ${orpo.name} moves rejected by ` +
      `${d(orpo, 'heldOut', 'rejected')} instead of SFT's ${d(sft, 'heldOut', 'rejected')}, but chosen by ${d(orpo, 'heldOut', 'chosen')} instead of ` +
      `${d(sft, 'heldOut', 'chosen')}: the odds-ratio term costs both about the same, and the held-out margin ends at ${m(orpo, 'heldOut')} (SFT ${m(sft, 'heldOut')}). ` +
      'This is where the result differs from the paper, in whose ORPO curves the rejected log-prob falls away from the chosen one: here that ' +
      'happens only on the pairs trained on. A 260k-parameter model trained on 1,000 pairs learns which of its training responses were ' +
      'rejected, but not what makes a harmless-base response rejected, so beyond the training pairs the penalty acts as "HH-style replies ' +
      'are less likely" and falls on chosen and rejected alike.',
    '',
    `**λ (Figure 9).** On the seen pairs the rejected log-prob's change goes ${at(seenRej, signed)} for λ = ${lambdaList}` +
      `${monotone(seenRej, -1) ? ' (falling further with every step up in λ)' : ''}, and the end margin ${at(seenMargin, f4)}` +
      `${monotone(seenMargin, 1) ? ' (wider with every step up)' : ''}: the paper's finding, that a larger λ pushes rejected down harder and ` +
      `widens the margin. The price is a smaller gain on chosen ` +
      `(${at(lambdas.map((x) => delta(x, 'seen', 'chosen')), signed)}). On the held-out pairs the rejected change goes ` +
      `${at(lambdas.map((x) => delta(x, 'heldOut', 'rejected')), signed)}, but chosen follows it (${at(lambdas.map((x) => delta(x, 'heldOut', 'chosen')), signed)}), ` +
      `so the held-out margin does not widen with λ (${at(heldMargin, f4)}).` +
      (small === undefined ? '' : ` At λ = 0.1 (TRL's default) ORPO is within a few thousandths of SFT on the held-out pairs ` +
        `(rejected ${d(small, 'heldOut', 'rejected')} vs ${d(sft, 'heldOut', 'rejected')}) and only slightly apart on the seen ones, ` +
        `which is why (a) shows λ = ${orpo.lambda}.`),
    '',
    '**How the learning rate and steps were chosen.** 250 steps (two epochs of the preference pairs) is what four runs plus the domain SFT ' +
      'allow in about ten minutes on two shared cores. The learning rate is the largest of 5e-4, 1e-3 and 2e-3 (SFT and ORPO λ = 0.1, all else ' +
      'as here) whose held-out curves move steadily: at 1e-3 and 2e-3 every run first loses held-out log-prob for about 50 steps and takes ' +
      'about 100 more to win it back (the jump from ' +
      'the domain run\'s decayed learning rate; at 2e-3 SFT\'s held-out chosen falls from −1.98 to −2.17 by step 50 and ends below its start, ' +
      '−0.010, rejected −0.016). At 2e-3 the seen-pair effects of λ are two to three times larger (λ = 1: rejected −0.34, margin 0.81; λ = 0: ' +
      'rejected +0.02, margin 0.55) and the held-out picture is the same (both fall together, margin flat). ' +
      '`node dist/experiments/hh/run.js --lr 2e-3 --lambda-a 0.1 --out /tmp/hh-lr2e-3` reruns that variant.',
    '',
    '**Caveats.** A 260k-parameter model with a 512-token vocabulary (1.7 characters of HH text per token, against 4.4 with Qwen3\'s tokenizer, ' +
      `so ${r.settings.maxLength} tokens hold the last turns and the first ~${Math.round(r.files.find((x) => x.file === 'train.jsonl')?.chosenTokens ?? 0)} ` +
      'tokens of a response); short training (250 steps); one seed and one data order; 250 held-out pairs (an accuracy\'s standard error ' +
      'is about 0.03). The domain model already scores the held-out chosen responses higher per token (accuracy ' +
      `${f3(r.domain.adapted.accuracy)} and margin ${f4(r.domain.adapted.margin)} before any preference training, though it was trained on both ` +
      `sides alike; stories260K itself: margin ${f4(r.domain.base.margin)}), so accuracy and margin ` +
      'are better read as changes than as levels. The mean log-prob per token is the length-normalised likelihood ORPO\'s odds are built on; ' +
      'averaged over pairs, it weighs a short response\'s tokens more than a long one\'s.',
  ];
  return parts.join('\n');
}

// ------------------------------------------------------------------------------------------------ main

async function sample(modelDir: string, tokens: number): Promise<string> {
  const tokenizer = await loadTokenizer(modelDir);
  const model = await loadModel(modelDir);
  model.kernels.setThreads(1);
  return generateText(model, tokenizer, encodePrompt(tokenizer, SAMPLE_PROMPT), { temperature: 0, topK: 0, topP: 1, maxNewTokens: tokens, seed: 0 }).text;
}

export async function main(argv: readonly string[]): Promise<Results> {
  const { values } = parseArgs({
    args: [...argv], strict: true, options: {
      quick: { type: 'boolean', default: false }, out: { type: 'string' }, runs: { type: 'string' }, only: { type: 'string' },
      threads: { type: 'string', default: '1' }, steps: { type: 'string' }, lr: { type: 'string' }, 'lambda-a': { type: 'string' },
      render: { type: 'boolean', default: false },
    },
  });
  if (values.render!) {
    // RESULTS.md again from results/results.json (no training): after a change to the report's text
    const out = resolve(values.out ?? join(repoRoot, 'experiments', 'hh'));
    const stored = JSON.parse(readFileSync(join(out, 'results', 'results.json'), 'utf8')) as Results;
    writeFileSync(join(out, 'RESULTS.md'), renderResults(stored, discussionOf(stored)));
    process.stderr.write(`hh: wrote ${join(out, 'RESULTS.md')} from ${join(out, 'results', 'results.json')}\n`);
    return stored;
  }
  const started = performance.now();
  const shared = sharedRoot();
  if (shared === null) throw new Error('../shared (models/stories260K and the HH-RLHF data) is not present next to this checkout (or at $ORPO_SHARED_DIR)');
  if (values.only !== undefined && values.only !== 'a' && values.only !== 'b') throw new Error(`--only: 'a' or 'b', got '${values.only}'`);
  const quick = values.quick!;
  const s: Settings = structuredClone(quick ? QUICK : FULL);
  if (values.steps !== undefined) s.pref.maxSteps = Number(values.steps);
  if (values.lr !== undefined) s.pref.lr = Number(values.lr);
  if (values['lambda-a'] !== undefined) s.lambdaA = Number(values['lambda-a']);
  const out = resolve(values.out ?? (quick ? mkdtempSync(join(tmpdir(), 'orpo-hh-')) : join(repoRoot, 'experiments', 'hh')));
  const runs = resolve(values.runs ?? (values.out !== undefined || quick ? join(out, 'runs') : '/tmp/orpo-hh-runs'));
  const ctx: Ctx = { s, runs, out, threads: Number(values.threads), model: join(shared, 'models', 'stories260K'), logs: join(runs, 'logs'), commands: [] };
  process.stderr.write(`hh: ${quick ? 'quick' : 'full'} run; report in ${out}, training folders in ${runs}\n`);

  const split = splitHh(join(shared, 'data', HH_FILE), s, join(runs, 'data'));
  process.stderr.write(`hh: split ${JSON.stringify(split)}\n`);
  const files: FileStats[] = [];
  for (const f of ['domain.jsonl', 'train.jsonl', 'eval.jsonl']) files.push(await fileStats(ctx.model, join(runs, 'data', f), s));
  const domain = await domainModel(ctx);
  const domainRecords = readFileSync(join(domain, 'metrics.jsonl'), 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, number>);
  const domainCurve = heldOutCurve(domainRecords);
  const seen = join(runs, 'data', 'seen.jsonl');
  const seenBase = await neutralMetrics(ctx.model, seen, s, ctx.threads);
  const seenAdapted = await neutralMetrics(domain, seen, s, ctx.threads);
  const domainWall = ctx.commands.find((c) => c.what === 'domain SFT')?.seconds ?? null;

  const doA = values.only !== 'b';
  const doB = values.only !== 'a';
  // (a)'s compare runs for (b) too: its SFT run is (b)'s λ = 0 and its ORPO run one of (b)'s λ values
  const aDir = join(runs, 'a');
  await runCli(ctx, `(a) SFT vs ORPO λ=${s.lambdaA}`, compareArgs(ctx, domain, aDir, 'sft,orpo', s.lambdaA));
  const aResults = JSON.parse(readFileSync(join(aDir, 'results.json'), 'utf8')) as { runs: CompareRun[] };
  const byName = (rs: { runs: CompareRun[] }, n: string): CompareRun => rs.runs.find((x) => x.name === n)!;
  const sft = await runCurves(ctx, byName(aResults, 'sft'), 0, seenAdapted);
  const orpoA = await runCurves(ctx, byName(aResults, 'orpo'), s.lambdaA, seenAdapted);
  let b: RunCurves[] | null = null;
  if (doB) {
    b = [sft];
    for (const lambda of s.lambdas) {
      if (lambda === s.lambdaA) {
        b.push(orpoA);
        continue;
      }
      const dir = join(runs, `b-lambda-${lambda}`);
      await runCli(ctx, `(b) ORPO λ=${lambda}`, compareArgs(ctx, domain, dir, 'orpo', lambda));
      const res = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as { runs: CompareRun[] };
      b.push(await runCurves(ctx, byName(res, 'orpo'), lambda, seenAdapted));
    }
    b.sort((x, y) => x.lambda - y.lambda);
  }
  const charts = [...(doA ? await chartsA(ctx, sft, orpoA) : []), ...(b !== null ? await chartsB(ctx, b) : [])];

  const [sampleBase, sampleAdapted] = [await sample(ctx.model, s.sampleTokens), await sample(domain, s.sampleTokens)];
  const results: Results = {
    quick, settings: s, split, files,
    domain: {
      base: domainCurve[0]!, adapted: domainCurve[domainCurve.length - 1]!, seenBase, seenAdapted, sampleBase, sampleAdapted,
      wallSeconds: domainWall, steps: domainCurve[domainCurve.length - 1]!.step,
    },
    a: doA ? { sft, orpo: orpoA } : null, b, charts: charts.map((c) => ({ ...c, file: relative(out, c.file) })),
    commands: ctx.commands.map((c) => ({ what: c.what, command: commandLine(ctx, c.argv), seconds: c.seconds })),
    wallSeconds: (performance.now() - started) / 1000,
  };
  // charts' paths relative to the report folder; runs' folders shown as given
  for (const r of [sft, orpoA, ...(b ?? [])]) r.dir = show(ctx, r.dir);
  mkdirSync(join(out, 'results'), { recursive: true });
  writeFileSync(join(out, 'results', 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(join(out, 'RESULTS.md'), renderResults({ ...results, charts }, discussionOf(results)));
  process.stderr.write(`hh: wrote ${join(out, 'RESULTS.md')} and ${join(out, 'results')}/ in ${(results.wallSeconds / 60).toFixed(1)} min\n`);
  for (const line of findings(results)) process.stdout.write(`${line}\n`);
  return results;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(`hh: ${(e as Error).message}\n`);
    process.exit(1);
  });
}
