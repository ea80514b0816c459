// The ORPO paper's win-rate comparison (Hong, Lee, Thorne 2024, Tables 2 and 3: ORPO against SFT and against
// SFT+DPO, judged by a reward model / GPT-4) at small scale, with judges that are exact rules instead:
//
//   stories  the real pretrained stories260K (../shared/models/stories260K) trained on the on-policy preference
//            pairs of experiments/stories (chosen = a sample that keeps to the prompt's character, rejected = one
//            that does not), judged by experiments/stories/judge.ts on the 400 held-out prompts, sampled as the
//            data was made (temperature 1, 48 new tokens, stop at BOS or EOS);
//   arith    the demo's task (`orpo demo`): a small random-init Llama with the character tokenizer, two-digit
//            additions (chosen = the right sum, rejected = a near miss), judged exactly on held-out problems by
//            arith-judge.ts (1 when the greedy completion starts with the right three-digit sum).
//
// Each comparison is one `orpo compare` run (sft, sft+dpo, dpo, orpo, simpo; same data, order, steps, learning
// rate and seed), spawned as `node dist/src/cli/main.js compare ...`.
//
//   node dist/experiments/winrates/run.js [--quick] [--out DIR] [--only stories,arith] [--seeds 1,2,3]
//        [--sweep [--lrs 1e-4,3e-4,1e-3,3e-3]] [--lr RATE] [--orpo-lambda λ] [--no-copy]
//   node dist/experiments/winrates/run.js --pool-only      (rewrites results/*-seeds.md from the seed folders)
//
// Without --quick, each seed's summary.md, results.json, report.html, charts/*.svg, the judged generations
// (gzipped) and the exact command are copied into experiments/winrates/results/<name>-s<seed>/, and every seed
// found there is pooled into results/<name>-seeds.md / .json. Model weights stay in --out (default
// /tmp/orpo-winrates, outside the repository). --sweep trains every method at each learning rate without a judge
// and picks the shared learning rate by a fixed rule on held-out neutral metrics only (see pickLearningRate);
// its table goes to results/<name>-sweep.md. --quick (the test's run: a few steps, 20 judged prompts, a tiny
// arithmetic model) writes only to --out (default: a temporary folder).

import { spawn } from 'node:child_process';
import { copyFileSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { gunzipSync, gzipSync } from 'node:zlib';
import { writeDemoData, writeDemoModelFolder } from '../../src/cli/demo.js';
import { arithmeticTask } from '../../src/train/demo-task.js';
import type { CompareResults } from '../../src/compare/results.js';
import { fluencyOf, type Fluency } from './fluency.js';

/** repository root (dist/experiments/winrates/ -> ../../..) */
export const repoRoot = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const mainJs = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
const resultsRoot = join(repoRoot, 'experiments', 'winrates', 'results');

export const METHODS = ['sft', 'sft+dpo', 'dpo', 'orpo', 'simpo'] as const;
export const COMPARISONS = ['stories', 'arith'] as const;
export type ComparisonName = (typeof COMPARISONS)[number];

/** ../shared next to the repository (ORPO_SHARED_DIR overrides), as a path relative to the repository when it can be */
export function sharedModelDir(): string | null {
  const shared = process.env.ORPO_SHARED_DIR ?? join(repoRoot, '..', 'shared');
  const dir = join(shared, 'models', 'stories260K');
  if (!existsSync(join(dir, 'config.json'))) return null;
  const rel = relative(repoRoot, dir);
  return rel.startsWith('..') && !rel.startsWith('../..') ? rel : resolve(dir);
}

// ------------------------------------------------------------------------------------------------ settings

/**
 * The shared settings of each comparison. Every method gets the same data, order, steps, batch, schedule and
 * learning rate; only the objective (and its own β / λ) differs. sft+dpo is two stages of `steps` each (the
 * paper's baseline: SFT, then DPO from and referenced to the SFT model), so it trains twice as long.
 */
export interface Settings {
  /** shared peak learning rate (chosen by --sweep; see RESULTS.md) */
  learningRate: number;
  steps: number;
  batch: number;
  evalSteps: number;
  warmupRatio: number;
  orpoLambda: number;
  dpoBeta: number;
  simpoBeta: number;
  judgePrompts: number;
}

export const STORIES: Settings = {
  // chosen by `--sweep --only stories` (1e-4, 3e-4, 1e-3, 3e-3) and pickLearningRate: see results/stories-sweep.md
  learningRate: 3e-4,
  steps: 150, // ≈ one epoch of the 1,188 training pairs at 8 pairs a step
  batch: 8,
  evalSteps: 25,
  warmupRatio: 0.1,
  orpoLambda: 0.1, // the paper's λ for its 1B-7B models (and TRL's default)
  dpoBeta: 0.1, // the paper's (and TRL's) β
  simpoBeta: 2.0, // SimPO's recommended β (γ = 0.5, the library default)
  judgePrompts: 400,
};

export const ARITH: Settings = {
  // `orpo demo`'s own settings (3,000 steps of 16 pairs, 5% warmup, linear decay, λ 0.5) except the learning rate:
  // the demo's 3e-3 was set for ORPO; the shared rate is chosen by `--sweep --only arith` and pickLearningRate
  // like the stories one (results/arith-sweep.md); `--lr 3e-3` runs the demo's rate (results/arith-lr0.003-s1/)
  learningRate: 3e-4,
  steps: 3000,
  batch: 16,
  evalSteps: 500,
  warmupRatio: 0.05,
  orpoLambda: 0.5,
  dpoBeta: 0.1,
  simpoBeta: 2.0,
  judgePrompts: 500,
};

/** the demo model's size (orpo demo: width 64, 2 layers, heads of 16 dimensions, SwiGLU 2x) and its data */
const ARITH_MODEL = { hiddenSize: 64, layers: 2, heads: 4, intermediateSize: 128 };
const ARITH_TRAIN_PAIRS = 3000;

const QUICK_STORIES: Settings = { ...STORIES, learningRate: 1e-3, steps: 4, batch: 4, evalSteps: 4, judgePrompts: 20 };
const QUICK_ARITH: Settings = { ...ARITH, steps: 20, batch: 8, evalSteps: 20, judgePrompts: 20 };
const QUICK_ARITH_MODEL = { hiddenSize: 16, layers: 1, heads: 1, intermediateSize: 32 };
const QUICK_EVAL_PAIRS = 16;
const QUICK_TRAIN_PAIRS = 64;

// ------------------------------------------------------------------------------------------------ one compare run

interface Job {
  comparison: ComparisonName;
  seed: number;
  settings: Settings;
  dir: string;
  /** compare's arguments, paths relative to the repository root where they are inside it */
  args: string[];
}

const rel = (p: string): string => {
  const r = relative(repoRoot, p);
  return r.startsWith('..') ? resolve(p) : r;
};

function sharedArgs(s: Settings, seed: number, dir: string): string[] {
  return [
    '--methods', METHODS.join(','),
    '--learning-rate', String(s.learningRate), '--max-steps', String(s.steps), '--per-device-train-batch-size', String(s.batch),
    '--lr-scheduler-type', 'linear', '--warmup-ratio', String(s.warmupRatio),
    '--orpo-beta', String(s.orpoLambda), '--dpo-beta', String(s.dpoBeta), '--simpo-beta', String(s.simpoBeta),
    // ORPO's NLL term on the response only, like SFT's completion-only loss: the same tokens supervised
    '--sft-scope', 'response', '--completion-only-loss', 'true',
    '--eval-steps', String(s.evalSteps), '--logging-steps', String(Math.max(1, Math.round(s.steps / 15))), '--save-steps', '0', '--report', 'false',
    '--seed', String(seed), '--threads', '1', '--output-dir', dir,
  ];
}

/** Writes what the stories comparison needs (quick: a shortened held-out file) and returns its job. */
function storiesJob(out: string, seed: number, s: Settings, quick: boolean, withJudge: boolean, tag: string): Job {
  const model = sharedModelDir();
  if (model === null) throw new Error('stories: ../shared/models/stories260K is missing (set ORPO_SHARED_DIR or run with --only arith)');
  const data = join(repoRoot, 'experiments', 'stories', 'data');
  let evalFile = join(data, 'eval.jsonl');
  let trainFile = join(data, 'train.jsonl');
  if (quick) {
    // the first pairs of each file: the quick run checks the pipeline, not the result
    const head = (file: string, n: number, name: string): string => {
      const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '').slice(0, n);
      mkdirSync(join(out, 'quick-data'), { recursive: true });
      const to = join(out, 'quick-data', name);
      writeFileSync(to, `${lines.join('\n')}\n`);
      return to;
    };
    evalFile = head(evalFile, QUICK_EVAL_PAIRS, 'stories-eval.jsonl');
    trainFile = head(trainFile, QUICK_TRAIN_PAIRS, 'stories-train.jsonl');
  }
  const dir = join(out, 'stories', tag);
  const args = [
    '--model', model, '--dataset', rel(trainFile), '--eval-dataset', rel(evalFile),
    '--per-device-eval-batch-size', '32',
    ...(withJudge ? [
      '--judge', rel(join(repoRoot, 'dist', 'experiments', 'stories', 'judge.js')), '--judge-prompts', rel(join(data, 'eval-prompts.jsonl')),
      '--judge-max-prompts', String(s.judgePrompts), '--temperature', '1', '--top-k', '0', '--top-p', '1', '--max-new-tokens', '48',
      '--stop-token-ids', '1',
    ] : []),
    ...sharedArgs(s, seed, dir),
  ];
  return { comparison: 'stories', seed, settings: s, dir, args };
}

/** Builds the demo's model and data with the library (seeded by `seed`) and returns the arithmetic job. */
async function arithJob(out: string, seed: number, s: Settings, quick: boolean, withJudge: boolean, tag: string): Promise<Job> {
  const size = quick ? QUICK_ARITH_MODEL : ARITH_MODEL;
  const evalPairs = s.judgePrompts;
  const base = join(out, 'arith', `base-s${seed}${quick ? '-quick' : ''}`);
  await writeDemoModelFolder(join(base, 'model'), size, seed);
  const task = arithmeticTask(seed, quick ? 64 : ARITH_TRAIN_PAIRS, evalPairs);
  const files = await writeDemoData(join(base, 'data'), task);
  const promptsFile = join(base, 'data', 'eval-prompts.jsonl');
  writeFileSync(promptsFile, task.eval.map((p) => `${JSON.stringify({ prompt: p.prompt })}\n`).join(''));
  const dir = join(out, 'arith', tag);
  const args = [
    '--model', join(base, 'model'), '--dataset', files.train, '--eval-dataset', files.eval,
    '--max-length', '16', '--max-prompt-length', '8', '--per-device-eval-batch-size', '50',
    ...(withJudge ? [
      '--judge', rel(join(repoRoot, 'dist', 'experiments', 'winrates', 'arith-judge.js')), '--judge-prompts', promptsFile,
      '--judge-max-prompts', String(s.judgePrompts), '--temperature', '0', '--max-new-tokens', '4',
    ] : []),
    ...sharedArgs(s, seed, dir),
  ];
  return { comparison: 'arith', seed, settings: s, dir, args };
}

const quote = (a: string): string => (/^[\w./,+=:-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
export const commandLine = (args: readonly string[]): string => `node dist/src/cli/main.js compare ${args.map(quote).join(' ')}`;

/** Runs `orpo compare`, its output to DIR/compare.log; on failure the log's tail is printed. */
function runCompare(job: Job, log: (s: string) => void): Promise<{ seconds: number }> {
  mkdirSync(job.dir, { recursive: true });
  const logFile = join(job.dir, 'compare.log');
  const sink = createWriteStream(logFile);
  log(`${job.comparison} seed ${job.seed}: ${commandLine(job.args)}`);
  const started = performance.now();
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [mainJs, 'compare', ...job.args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.pipe(sink, { end: false });
    child.stderr.pipe(sink, { end: false });
    child.stderr.on('data', (b: Buffer) => {
      for (const line of b.toString().split('\n')) if (line.startsWith('compare: ')) log(`  ${line.slice(9)}`);
    });
    child.on('error', fail);
    child.on('close', (code, signal) => {
      sink.end(() => {
        const seconds = (performance.now() - started) / 1000;
        if (code === 0) return done({ seconds });
        const tail = readFileSync(logFile, 'utf8').split('\n').slice(-40).join('\n');
        fail(new Error(`orpo compare (${job.comparison}, seed ${job.seed}) failed (${signal ?? `exit code ${code}`}); ${logFile} ends:\n${tail}`));
      });
    });
  });
}

const readResults = (dir: string): CompareResults => JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as CompareResults;

// ------------------------------------------------------------------------------------------------ the learning-rate rule

export interface SweepRow {
  learningRate: number;
  /** per method: the final held-out neutral metrics */
  methods: Record<string, { chosen: number; rejected: number; accuracy: number; margin: number }>;
  start: { chosen: number; rejected: number; accuracy: number; margin: number };
  meanAccuracy: number;
  /** the largest drop of held-out chosen log-prob per token below the starting model's, over the methods */
  worstChosenDrop: number;
  eligible: boolean;
}

/**
 * a method may lose at most this much held-out log-prob per token on the chosen responses (nats): a factor e per
 * token. (The first threshold, 0.25, excluded every rate of the stories sweep because DPO and SimPO lower the
 * chosen log-prob at every rate; it was raised to 1 before anything was judged. See RESULTS.md.)
 */
export const MAX_CHOSEN_DROP = 1;

/**
 * The rule, fixed before any judged run: the learning rate with the highest held-out preference accuracy
 * (eval_mean_logps/accuracy: the chosen response more likely per token than the rejected one) averaged over the
 * five methods, among the rates at which no method's held-out chosen log-prob per token falls more than
 * MAX_CHOSEN_DROP below the starting model's (a rate that makes a method unlearn the preferred stories is out).
 * Only held-out preference pairs enter; the judge does not.
 */
export function pickLearningRate(rows: readonly SweepRow[]): SweepRow | null {
  const ok = rows.filter((r) => r.eligible);
  if (ok.length === 0) return null;
  return ok.reduce((a, b) => (b.meanAccuracy > a.meanAccuracy ? b : a));
}

function sweepRow(learningRate: number, r: CompareResults): SweepRow {
  const pick = (p: Record<string, number> | undefined) => ({
    chosen: p?.['eval_mean_logps/chosen'] ?? NaN, rejected: p?.['eval_mean_logps/rejected'] ?? NaN,
    accuracy: p?.['eval_mean_logps/accuracy'] ?? NaN, margin: p?.['eval_mean_logps/margin'] ?? NaN,
  });
  const start = pick(r.runs[0]?.curve[0]);
  const methods = Object.fromEntries(r.runs.map((m) => [m.name, pick(m.final)]));
  const vals = Object.values(methods);
  const meanAccuracy = vals.reduce((a, v) => a + v.accuracy, 0) / vals.length;
  const worstChosenDrop = Math.max(...vals.map((v) => start.chosen - v.chosen));
  return { learningRate, methods, start, meanAccuracy, worstChosenDrop, eligible: Number.isFinite(meanAccuracy) && worstChosenDrop <= MAX_CHOSEN_DROP };
}

const f = (x: number, d = 4): string => (Number.isFinite(x) ? x.toFixed(d) : '–');

function sweepMarkdown(name: string, s: Settings, rows: readonly SweepRow[], chosen: SweepRow | null): string {
  const head = ['learning rate', ...METHODS.map((m) => `${m} chosen / rejected / acc`), 'mean acc', 'worst chosen drop', 'eligible'];
  const lines = [
    `# ${name}: learning-rate sweep (held-out neutral metrics only, no judge)`, '',
    `${s.steps} steps of ${s.batch} pairs, seed 1, every method; start (the untrained model): chosen ${f(rows[0]?.start.chosen ?? NaN)}, ` +
      `rejected ${f(rows[0]?.start.rejected ?? NaN)}, accuracy ${f(rows[0]?.start.accuracy ?? NaN, 3)} (mean log-prob per response token on the held-out pairs).`, '',
    `Rule: the highest mean held-out accuracy over the five methods among rates where no method's held-out chosen log-prob per token falls more than ${MAX_CHOSEN_DROP} below the start.`, '',
    `| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.learningRate} | ${METHODS.map((m) => { const v = r.methods[m]; return v === undefined ? '–' : `${f(v.chosen, 3)} / ${f(v.rejected, 3)} / ${f(v.accuracy, 3)}`; }).join(' | ')} | ${f(r.meanAccuracy, 3)} | ${f(r.worstChosenDrop, 3)} | ${r.eligible ? 'yes' : 'no'} |`),
    '', chosen === null ? 'No rate is eligible.' : `Chosen: **${chosen.learningRate}**.`, '',
  ];
  return lines.join('\n');
}

// ------------------------------------------------------------------------------------------------ pooling seeds

interface Generation { prompt: string; completion: string; score: number }

function readGenerations(dir: string, who: string): Generation[] {
  const gz = join(dir, 'generations', `${who}.jsonl.gz`);
  const text = existsSync(gz) ? gunzipSync(readFileSync(gz)).toString('utf8') : readFileSync(join(dir, 'generations', `${who}.jsonl`), 'utf8');
  return text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Generation);
}

export interface Pooled {
  mean: number;
  ci95: [number, number];
  n: number;
  clusters: number;
}

/**
 * A mean over (seed, prompt) outcomes with a 95% interval that treats each prompt as a cluster (the same prompt
 * under several seeds is not an independent observation): cluster-robust standard error of a mean.
 */
export function clusteredMean(values: readonly number[], clusters: readonly string[], range: [number, number] = [-Infinity, Infinity]): Pooled {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const sums = new Map<string, number>();
  values.forEach((v, i) => sums.set(clusters[i]!, (sums.get(clusters[i]!) ?? 0) + (v - mean)));
  const g = sums.size;
  let s2 = 0;
  for (const s of sums.values()) s2 += s * s;
  const se = g > 1 ? Math.sqrt((g / (g - 1)) * s2) / n : 0;
  return { mean, ci95: [Math.max(range[0], mean - 1.96 * se), Math.min(range[1], mean + 1.96 * se)], n, clusters: g };
}

const outcome = (a: number, b: number): number => (a > b ? 1 : a < b ? 0 : 0.5);

export interface SeedSummary {
  comparison: string;
  seeds: number[];
  contestants: string[];
  /** per contestant: mean judge score and pass rate (score ≥ 1), per seed and pooled */
  scores: Record<string, { perSeed: number[]; pooled: Pooled; passPerSeed: number[]; passPooled: Pooled }>;
  winRates: { a: string; b: string; perSeed: number[]; pooled: Pooled }[];
  /** stories: the untrained model's log-prob per token of each contestant's completions, per seed */
  fluency?: Fluency[];
}

/** Pools every seed folder results/<name>-s<seed>/ that holds judged generations. */
export function poolSeeds(name: string, root = resultsRoot): SeedSummary | null {
  if (!existsSync(root)) return null;
  const dirs = readdirSync(root).map((d) => /^(.+)-s(\d+)$/.exec(d)).filter((m): m is RegExpExecArray => m !== null && m[1] === name)
    .map((m) => ({ seed: Number(m[2]), dir: join(root, m[0]) })).filter((d) => existsSync(join(d.dir, 'results.json')))
    .sort((a, b) => a.seed - b.seed);
  if (dirs.length === 0) return null;
  const contestants = readResults(dirs[0]!.dir).judge?.contestants;
  if (contestants === undefined) return null;
  const gens = dirs.map((d) => Object.fromEntries(contestants.map((c) => [c, readGenerations(d.dir, c)])) as Record<string, Generation[]>);
  const promptsOf = gens.map((g) => g[contestants[0]!]!.map((x) => x.prompt));
  const clusters = promptsOf.flat();
  const scores: SeedSummary['scores'] = {};
  for (const c of contestants) {
    const per = gens.map((g) => g[c]!.map((x) => x.score));
    const pass = per.map((s) => s.map((v) => (v >= 1 ? 1 : 0)));
    const avg = (v: number[]): number => v.reduce((a, b) => a + b, 0) / v.length;
    scores[c] = { perSeed: per.map(avg), pooled: clusteredMean(per.flat(), clusters), passPerSeed: pass.map(avg), passPooled: clusteredMean(pass.flat(), clusters, [0, 1]) };
  }
  const winRates: SeedSummary['winRates'] = [];
  for (const [i, a] of contestants.entries()) {
    for (const b of contestants.slice(i + 1)) {
      const per = gens.map((g) => g[a]!.map((x, k) => outcome(x.score, g[b]![k]!.score)));
      winRates.push({ a, b, perSeed: per.map((o) => o.reduce((s, v) => s + v, 0) / o.length), pooled: clusteredMean(per.flat(), clusters, [0, 1]) });
    }
  }
  const fluency = dirs.map((d) => (existsSync(join(d.dir, 'fluency.json')) ? JSON.parse(readFileSync(join(d.dir, 'fluency.json'), 'utf8')) as Fluency : null));
  return { comparison: name, seeds: dirs.map((d) => d.seed), contestants, scores, winRates, ...(fluency.every((x) => x !== null) ? { fluency: fluency as Fluency[] } : {}) };
}

/** two-sided 95% Student t quantiles for 1..10 degrees of freedom (then the normal's 1.96 is close enough) */
const T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228];

/** the mean of per-seed values with a 95% t interval over seeds (training noise included), or null for one seed */
export function overSeeds(values: readonly number[]): { mean: number; ci95: [number, number] } | null {
  const k = values.length;
  if (k < 2) return null;
  const mean = values.reduce((a, b) => a + b, 0) / k;
  const sd = Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (k - 1));
  const half = (T975[k - 2] ?? 1.96) * sd / Math.sqrt(k);
  return { mean, ci95: [mean - half, mean + half] };
}

const ci = (p: Pooled, d = 3): string => `${f(p.mean, d)} [${f(p.ci95[0], d)}, ${f(p.ci95[1], d)}]`;

export function seedsMarkdown(s: SeedSummary): string {
  const seedCols = s.seeds.map((x) => `seed ${x}`);
  const lines = [
    `# ${s.comparison}: every seed (${s.seeds.join(', ')})`, '',
    'Pooled = the mean over all (seed, prompt) outcomes; its 95% interval treats each prompt as a cluster (cluster-robust standard error), so the same prompt judged under several seeds is not counted as independent evidence. The interval covers prompt-to-prompt noise; with few seeds the seed-to-seed spread (the per-seed columns) is the better guide to training noise.', '',
    '## Judge scores', '',
    `| model | ${seedCols.join(' | ')} | pooled mean score [95% CI] | pass rate per seed | pooled pass rate [95% CI] |`,
    `|---|${seedCols.map(() => '---').join('|')}|---|---|---|`,
    ...s.contestants.map((c) => { const v = s.scores[c]!; return `| ${c} | ${v.perSeed.map((x) => f(x, 3)).join(' | ')} | ${ci(v.pooled)} | ${v.passPerSeed.map((x) => f(x, 3)).join(', ')} | ${ci(v.passPooled)} |`; }),
    '', '## Win rates of A against B ((wins + ties / 2) / prompts)', '',
    ...(s.seeds.length > 1 ? ['"over seeds" = the mean of the per-seed win rates with a 95% Student t interval over the seeds: it includes training noise (data order, sampling seeds), which the pooled prompt interval does not.', ''] : []),
    `| A | B | ${seedCols.join(' | ')} | pooled [95% CI over prompts] |${s.seeds.length > 1 ? ' over seeds [95% t CI] |' : ''}`,
    `|---|---|${seedCols.map(() => '---').join('|')}|---|${s.seeds.length > 1 ? '---|' : ''}`,
    ...orderedWinRates(s).map((w) => {
      const o0 = overSeeds(w.perSeed);
      const o = o0 === null ? null : { mean: o0.mean, ci95: [Math.max(0, o0.ci95[0]), Math.min(1, o0.ci95[1])] };
      return `| ${w.a} | ${w.b} | ${w.perSeed.map((x) => f(x, 3)).join(' | ')} | ${ci(w.pooled)} |${o === null ? '' : ` ${f(o.mean, 3)} [${f(o.ci95[0], 3)}, ${f(o.ci95[1], 3)}] |`}`;
    }),
    '',
  ];
  if (s.fluency !== undefined) {
    lines.push('## Fluency: the untrained model\'s mean log-prob per token of the judged completions (higher = more like its own stories)', '',
      `| model | ${seedCols.map((c) => `${c} [95% CI]`).join(' | ')} |`, `|---|${seedCols.map(() => '---').join('|')}|`,
      ...s.contestants.map((c) => `| ${c} | ${s.fluency!.map((fl) => { const e = fl.meanLogprob[c]; return e === undefined ? '–' : `${f(e.mean, 3)} [${f(e.ci95[0], 3)}, ${f(e.ci95[1], 3)}]`; }).join(' | ')} |`), '');
  }
  return lines.join('\n');
}

/** ORPO first (A = orpo), then the rest as compare lists them */
function orderedWinRates(s: SeedSummary): SeedSummary['winRates'] {
  const flip = (w: SeedSummary['winRates'][number]) => ({
    a: w.b, b: w.a, perSeed: w.perSeed.map((x) => 1 - x),
    pooled: { ...w.pooled, mean: 1 - w.pooled.mean, ci95: [1 - w.pooled.ci95[1], 1 - w.pooled.ci95[0]] as [number, number] },
  });
  const orpo = s.winRates.filter((w) => w.a === 'orpo' || w.b === 'orpo').map((w) => (w.a === 'orpo' ? w : flip(w)));
  return [...orpo, ...s.winRates.filter((w) => w.a !== 'orpo' && w.b !== 'orpo')];
}

// ------------------------------------------------------------------------------------------------ copying results

function machine(): Record<string, unknown> {
  const c = cpus();
  return {
    cpu: c[0]?.model ?? 'unknown', cores: c.length, node: process.version, date: new Date().toISOString(), loadavg_1min: Number(loadavg()[0]!.toFixed(2)),
    line: `${c[0]?.model ?? 'unknown CPU'}, ${c.length} cores, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`,
  };
}

function copyResults(job: Job, seconds: number, loadStart: number, variant: string): string {
  const dest = join(resultsRoot, `${job.comparison}${variant}-s${job.seed}`);
  mkdirSync(join(dest, 'charts'), { recursive: true });
  mkdirSync(join(dest, 'generations'), { recursive: true });
  for (const file of ['summary.md', 'results.json', 'report.html', 'fluency.json']) {
    if (existsSync(join(job.dir, file))) copyFileSync(join(job.dir, file), join(dest, file));
  }
  for (const svg of readdirSync(join(job.dir, 'charts')).filter((x) => x.endsWith('.svg'))) copyFileSync(join(job.dir, 'charts', svg), join(dest, 'charts', svg));
  for (const g of readdirSync(join(job.dir, 'generations')).filter((x) => x.endsWith('.jsonl'))) {
    writeFileSync(join(dest, 'generations', `${g}.gz`), gzipSync(readFileSync(join(job.dir, 'generations', g)), { level: 9 }));
  }
  writeFileSync(join(dest, 'command.txt'), `${commandLine(job.args)}\n`);
  writeFileSync(join(dest, 'run.json'), `${JSON.stringify({ wall_seconds: Number(seconds.toFixed(1)), settings: job.settings, machine: { ...machine(), loadavg_1min_start: Number(loadStart.toFixed(2)) } }, null, 2)}\n`);
  return dest;
}

// ------------------------------------------------------------------------------------------------ main

export interface RunOptions {
  quick: boolean;
  out: string;
  only: ComparisonName[];
  seeds: number[];
  sweep: boolean;
  lrs: number[];
  copy: boolean;
  /** a learning rate other than the comparison's chosen one (a sensitivity run: results/<name>-lr<rate>-s<seed>/) */
  lr: number | null;
  /** an ORPO λ other than the comparison's (a sensitivity run: results/<name>[-lr<rate>]-lambda<λ>-s<seed>/) */
  orpoLambda: number | null;
}

async function jobFor(name: ComparisonName, o: RunOptions, seed: number, s: Settings, withJudge: boolean): Promise<Job> {
  const lambda = o.orpoLambda === null ? '' : `-lambda${o.orpoLambda}`;
  const tag = `${o.quick ? 'quick-' : ''}lr${s.learningRate}${lambda}-s${seed}`;
  return name === 'stories' ? storiesJob(o.out, seed, s, o.quick, withJudge, tag) : arithJob(o.out, seed, s, o.quick, withJudge, tag);
}

/** Rewrites every results/<name>-seeds.md / .json from the seed folders there (nothing is run). */
export function poolAll(log: (s: string) => void): string[] {
  const names = new Set(readdirSync(resultsRoot).map((d) => /^(.+)-s(\d+)$/.exec(d)?.[1]).filter((x): x is string => x !== undefined));
  const out: string[] = [];
  for (const name of [...names].sort()) {
    const pooled = poolSeeds(name);
    if (pooled === null) continue;
    writeFileSync(join(resultsRoot, `${name}-seeds.md`), seedsMarkdown(pooled));
    writeFileSync(join(resultsRoot, `${name}-seeds.json`), `${JSON.stringify(pooled, null, 2)}\n`);
    log(`pooled ${name}: seeds ${pooled.seeds.join(', ')}`);
    out.push(join(resultsRoot, `${name}-seeds.md`));
  }
  return out;
}

export async function run(o: RunOptions, log: (s: string) => void = (s) => process.stderr.write(`winrates: ${s}\n`)): Promise<Record<string, string[]>> {
  const written: Record<string, string[]> = {};
  const started = performance.now();
  for (const name of o.only) {
    const chosen = name === 'stories' ? (o.quick ? QUICK_STORIES : STORIES) : (o.quick ? QUICK_ARITH : ARITH);
    const base = { ...chosen, ...(o.lr === null ? {} : { learningRate: o.lr }), ...(o.orpoLambda === null ? {} : { orpoLambda: o.orpoLambda }) };
    const variant = (base.learningRate === chosen.learningRate ? '' : `-lr${base.learningRate}`) +
      (base.orpoLambda === chosen.orpoLambda ? '' : `-lambda${base.orpoLambda}`);
    if (o.sweep) {
      const rows: SweepRow[] = [];
      for (const lr of o.lrs) {
        const s = { ...base, learningRate: lr };
        const job = await jobFor(name, o, 1, s, false);
        await runCompare(job, log);
        rows.push(sweepRow(lr, readResults(job.dir)));
      }
      const chosen = pickLearningRate(rows);
      const md = sweepMarkdown(name, base, rows, chosen);
      const dest = o.copy ? resultsRoot : o.out;
      mkdirSync(dest, { recursive: true });
      writeFileSync(join(dest, `${name}-sweep.md`), md);
      writeFileSync(join(dest, `${name}-sweep.json`), `${JSON.stringify({ rule: `highest mean held-out accuracy (eval_mean_logps/accuracy) over the methods, among rates whose worst held-out chosen log-prob drop <= ${MAX_CHOSEN_DROP}`, rows, chosen: chosen?.learningRate ?? null }, null, 2)}\n`);
      process.stdout.write(md);
      written[name] = [join(dest, `${name}-sweep.md`)];
      continue;
    }
    written[name] = [];
    for (const seed of o.seeds) {
      const loadStart = loadavg()[0]!;
      const job = await jobFor(name, o, seed, base, true);
      const { seconds } = await runCompare(job, log);
      const r = readResults(job.dir);
      if (name === 'stories' && r.judge !== null) {
        // the rule judge checks names only: how story-like the judged text is, by the untrained model
        const fl = await fluencyOf(job.dir, resolve(repoRoot, r.model), r.judge.contestants);
        writeFileSync(join(job.dir, 'fluency.json'), `${JSON.stringify(fl, null, 2)}\n`);
        log(`  fluency (stories260K log-prob per token of the completions): ${Object.entries(fl.meanLogprob).map(([k, v]) => `${k} ${f(v.mean, 3)}`).join(', ')}`);
      }
      const orpoVs = r.judge?.winRates.filter((w) => w.a === 'orpo' || w.b === 'orpo') ?? [];
      for (const w of orpoVs) {
        const mine = w.a === 'orpo';
        const e = w.winRate;
        const [lo, hi] = mine ? e.ci95 : [1 - e.ci95[1], 1 - e.ci95[0]];
        log(`  ${name} seed ${seed}: orpo vs ${mine ? w.b : w.a}: ${f(mine ? e.mean : 1 - e.mean, 3)} [${f(lo, 3)}, ${f(hi, 3)}]`);
      }
      log(`${name} seed ${seed}: done in ${seconds.toFixed(0)} s (${job.dir})`);
      written[name]!.push(o.copy ? copyResults(job, seconds, loadStart, variant) : job.dir);
    }
    if (o.copy) {
      const pooled = poolSeeds(`${name}${variant}`);
      if (pooled !== null) {
        writeFileSync(join(resultsRoot, `${name}${variant}-seeds.md`), seedsMarkdown(pooled));
        writeFileSync(join(resultsRoot, `${name}${variant}-seeds.json`), `${JSON.stringify(pooled, null, 2)}\n`);
      }
    }
  }
  log(`all done in ${((performance.now() - started) / 1000).toFixed(0)} s; machine: ${machine()['line'] as string}`);
  return written;
}

function parseList(text: string, what: string): number[] {
  return text.split(',').map((t) => {
    const v = Number(t.trim());
    if (t.trim() === '' || !Number.isFinite(v)) throw new Error(`--${what}: '${t}' is not a number`);
    return v;
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      out: { type: 'string' },
      only: { type: 'string', default: COMPARISONS.join(',') },
      seeds: { type: 'string', default: '1' },
      sweep: { type: 'boolean', default: false },
      lrs: { type: 'string', default: '1e-4,3e-4,1e-3,3e-3' },
      lr: { type: 'string' },
      'orpo-lambda': { type: 'string' },
      'no-copy': { type: 'boolean', default: false },
      'pool-only': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write('Usage: node dist/experiments/winrates/run.js [--quick] [--out DIR] [--only stories,arith] [--seeds 1,2,3] [--sweep [--lrs 1e-4,3e-4,1e-3,3e-3]] [--lr RATE] [--orpo-lambda λ] [--no-copy] | --pool-only\n');
    return;
  }
  if (values['pool-only']) {
    process.stdout.write(`${JSON.stringify({ written: poolAll((s) => process.stderr.write(`winrates: ${s}\n`)) })}\n`);
    return;
  }
  const only = values.only.split(',').map((s) => s.trim()) as ComparisonName[];
  for (const n of only) if (!(COMPARISONS as readonly string[]).includes(n)) throw new Error(`--only: unknown comparison '${n}' (${COMPARISONS.join(', ')})`);
  const out = resolve(values.out ?? (values.quick ? mkdtempSync(join(tmpdir(), 'orpo-winrates-quick-')) : join(tmpdir(), 'orpo-winrates')));
  const o: RunOptions = {
    quick: values.quick, out, only, seeds: parseList(values.seeds, 'seeds'), sweep: values.sweep, lrs: parseList(values.lrs, 'lrs'),
    copy: !values.quick && !values['no-copy'], lr: values.lr === undefined ? null : parseList(values.lr, 'lr')[0]!,
    orpoLambda: values['orpo-lambda'] === undefined ? null : parseList(values['orpo-lambda'], 'orpo-lambda')[0]!,
  };
  const written = await run(o);
  process.stdout.write(`${JSON.stringify({ out, written })}\n`);
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    process.stderr.write(`winrates: ${(e as Error).message}\n`);
    process.exit(1);
  });
}
