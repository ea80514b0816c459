// On-policy preference data for the stories experiment: templated prompts, K sampled continuations each from
// stories260K itself, each scored by the judge (judge.ts); a prompt with at least one passing and one failing
// sample gives a pair {prompt, chosen: the best passing sample, rejected: a random failing one} (as
// UltraFeedback-binarized takes the best-rated response and a random other one).
//
//   node dist/experiments/stories/make-data.js --out DIR [--train-prompts N] [--eval-prompts N] [--samples K]
//     [--seed S] [--model DIR] [--max-new-tokens N] [--temperature T] [--top-p P] [--top-k K] [--gzip]
//
// writes DIR/train.jsonl, DIR/eval.jsonl (pairs: TRL's explicit format, strings), DIR/eval-prompts.jsonl (every
// held-out prompt, {"prompt"} per line, for win rates), DIR/samples.jsonl.gz (every sample with its judgement)
// and DIR/stats.json. --gzip writes the other .jsonl files as .jsonl.gz too (the data readers take either).

import { mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { Rng, availableBackends } from '../../src/index.js';
import { judge, RULE, PASS_SCORE } from './judge.js';
import { splitPrompts, type StoryPrompt } from './prompts.js';
import { defaultModelDir, loadStoryModel, repoRoot, sampleSeed, sampleStory, STORY_SAMPLING, type StoryModel, type StorySampling } from './sampling.js';

export interface MakeDataOptions extends StorySampling {
  out: string;
  trainPrompts: number;
  evalPrompts: number;
  samples: number;
  seed: number;
  model: string;
  gzip: boolean;
  /** progress lines to stderr */
  log?: (line: string) => void;
}

export const MAKE_DATA_DEFAULTS = { trainPrompts: 1600, evalPrompts: 400, samples: 4, seed: 1, gzip: false, ...STORY_SAMPLING };

export interface PairRow {
  prompt: string;
  chosen: string;
  rejected: string;
  /** the judge's scores and the prompt's character, for reading; the data layer ignores extra fields */
  chosen_score: number;
  rejected_score: number;
  character: string;
}

export interface SampleRow {
  split: 'train' | 'eval';
  prompt_index: number;
  sample: number;
  prompt: string;
  completion: string;
  score: number;
  pass: boolean;
  mentions_character: boolean;
  intruders: string[];
  stop_reason: string;
  new_tokens: number;
  round_trip: boolean;
}

export interface SplitStats {
  prompts: number;
  samples: number;
  /** fraction of samples that pass: the starting model's success rate on the rule */
  base_rate: number;
  mean_score: number;
  /** fraction of samples naming the character again / bringing in at least one other name */
  mention_rate: number;
  intruder_rate: number;
  /** samples ended by the model (BOS) rather than the token limit */
  ended_by_model: number;
  mean_new_tokens: number;
  /** samples left out of pairs because their text does not re-encode to the sampled ids */
  not_round_trip: number;
  pairs: number;
  prompts_all_pass: number;
  prompts_all_fail: number;
  /** base rate per prompt character */
  base_rate_by_character: Record<string, number>;
}

function splitSamples(split: 'train' | 'eval', prompts: StoryPrompt[], offset: number, sm: StoryModel, opts: MakeDataOptions,
  progress: (n: number) => void): { pairs: PairRow[]; samples: SampleRow[]; stats: SplitStats } {
  const rng = new Rng(opts.seed * 7919 + (split === 'train' ? 1 : 2));
  const pairs: PairRow[] = [];
  const samples: SampleRow[] = [];
  let allPass = 0;
  let allFail = 0;
  prompts.forEach((p, i) => {
    const rows: SampleRow[] = [];
    for (let k = 0; k < opts.samples; k++) {
      const s = sampleStory(sm, p.prompt, sampleSeed(opts.seed, offset + i, k), opts);
      const j = judge(p.prompt, s.text);
      rows.push({
        split, prompt_index: i, sample: k, prompt: p.prompt, completion: s.text, score: j.score, pass: j.pass,
        mentions_character: j.mentionsCharacter, intruders: j.intruders, stop_reason: s.stopReason, new_tokens: s.tokens.length,
        round_trip: s.roundTrip,
      });
    }
    samples.push(...rows);
    const usable = rows.filter((r) => r.round_trip && r.completion.trim() !== '');
    const passing = usable.filter((r) => r.pass);
    const failing = usable.filter((r) => !r.pass);
    if (rows.every((r) => r.pass)) allPass++;
    if (rows.every((r) => !r.pass)) allFail++;
    if (passing.length > 0 && failing.length > 0) {
      // best passing sample (ties: the first drawn); a random failing one
      const chosen = passing.reduce((a, b) => (b.score > a.score ? b : a));
      const rejected = failing[Math.floor(rng.uniform() * failing.length)]!;
      pairs.push({
        prompt: p.prompt, chosen: chosen.completion, rejected: rejected.completion,
        chosen_score: chosen.score, rejected_score: rejected.score, character: p.name,
      });
    }
    progress(i + 1);
  });
  const n = samples.length;
  const frac = (f: (r: SampleRow) => boolean): number => round(samples.filter(f).length / Math.max(1, n));
  const byCharacter: Record<string, number> = {};
  for (const name of [...new Set(prompts.map((p) => p.name))].sort()) {
    const mine = samples.filter((r) => judge(r.prompt, '').character === name);
    byCharacter[name] = round(mine.filter((r) => r.pass).length / mine.length);
  }
  const stats: SplitStats = {
    prompts: prompts.length,
    samples: n,
    base_rate: frac((r) => r.pass),
    mean_score: round(samples.reduce((a, r) => a + r.score, 0) / Math.max(1, n)),
    mention_rate: frac((r) => r.mentions_character),
    intruder_rate: frac((r) => r.intruders.length > 0),
    ended_by_model: frac((r) => r.stop_reason === 'eos'),
    mean_new_tokens: round(samples.reduce((a, r) => a + r.new_tokens, 0) / Math.max(1, n)),
    not_round_trip: samples.filter((r) => !r.round_trip).length,
    pairs: pairs.length,
    prompts_all_pass: allPass,
    prompts_all_fail: allFail,
    base_rate_by_character: byCharacter,
  };
  return { pairs, samples, stats };
}

const round = (x: number): number => Math.round(x * 1e4) / 1e4;

function writeJsonl(dir: string, name: string, rows: readonly object[], gzip: boolean): string {
  const text = rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : '');
  const file = join(dir, gzip ? `${name}.gz` : name);
  // mtime 0 in the gzip header: the same data gives the same bytes
  writeFileSync(file, gzip ? gzipSync(text, { level: 9 }) : text);
  return file;
}

export interface MakeDataResult {
  files: string[];
  stats: Record<string, unknown>;
}

export async function makeData(opts: MakeDataOptions): Promise<MakeDataResult> {
  const log = opts.log ?? (() => {});
  const t0 = Date.now();
  const sm = await loadStoryModel(opts.model);
  const { train, eval: evalPrompts } = splitPrompts(opts.trainPrompts, opts.evalPrompts, opts.seed);
  const total = train.length + evalPrompts.length;
  let lastLog = 0;
  const progress = (base: number) => (done: number): void => {
    const now = Date.now();
    if (now - lastLog > 5000 || base + done === total) {
      lastLog = now;
      log(`make-data: ${base + done}/${total} prompts (${opts.samples} samples each), ${((now - t0) / 1000).toFixed(1)} s`);
    }
  };
  const tr = splitSamples('train', train, 0, sm, opts, progress(0));
  // eval prompts draw with seeds after the train ones, so changing --train-prompts changes no eval sample index
  const ev = splitSamples('eval', evalPrompts, 1_000_000, sm, opts, progress(train.length));
  mkdirSync(opts.out, { recursive: true });
  const files = [
    writeJsonl(opts.out, 'train.jsonl', tr.pairs, opts.gzip),
    writeJsonl(opts.out, 'eval.jsonl', ev.pairs, opts.gzip),
    writeJsonl(opts.out, 'eval-prompts.jsonl', evalPrompts.map((p) => ({ prompt: p.prompt })), opts.gzip),
    // every sample with its judgement, for analysis (always gzipped: it is the large one)
    writeJsonl(opts.out, 'samples.jsonl', [...tr.samples, ...ev.samples], true),
  ];
  const all = [...tr.samples, ...ev.samples];
  const stats = {
    rule: RULE,
    pass_score: PASS_SCORE,
    base_rate: round(all.filter((r) => r.pass).length / Math.max(1, all.length)),
    train: tr.stats,
    eval: ev.stats,
    options: {
      train_prompts: opts.trainPrompts, eval_prompts: opts.evalPrompts, samples: opts.samples, seed: opts.seed,
      temperature: opts.temperature, top_k: opts.topK, top_p: opts.topP, max_new_tokens: opts.maxNewTokens,
      model: relative(repoRoot, opts.model) || '.', stop_token_ids: sm.stopTokenIds,
    },
    split: 'train/eval prompts are disjoint by (character, opening) cell: 2 of the 8 openings per character are held out',
    pair_rule: 'chosen = the best passing sample (ties: the first drawn); rejected = a random failing sample; ' +
      'only samples whose text re-encodes to the sampled ids',
    backend: availableBackends()[0],
    seconds: round((Date.now() - t0) / 1000),
  };
  const statsFile = join(opts.out, 'stats.json');
  writeFileSync(statsFile, `${JSON.stringify(stats, null, 2)}\n`);
  files.push(statsFile);
  return { files, stats };
}

const USAGE = `Usage: node dist/experiments/stories/make-data.js --out DIR [--train-prompts N] [--eval-prompts N] [--samples K]
  [--seed S] [--model DIR] [--max-new-tokens N] [--temperature T] [--top-p P] [--top-k K] [--gzip]

Defaults: --train-prompts ${MAKE_DATA_DEFAULTS.trainPrompts} --eval-prompts ${MAKE_DATA_DEFAULTS.evalPrompts} --samples ${MAKE_DATA_DEFAULTS.samples} --seed ${MAKE_DATA_DEFAULTS.seed} --max-new-tokens ${STORY_SAMPLING.maxNewTokens}
  --temperature ${STORY_SAMPLING.temperature} --top-p ${STORY_SAMPLING.topP} --top-k ${STORY_SAMPLING.topK}; --model: ../shared/models/stories260K`;

function parseNumber(name: string, value: string | undefined, fallback: number, check: (x: number) => boolean): number {
  if (value === undefined) return fallback;
  const x = Number(value);
  if (value.trim() === '' || !Number.isFinite(x) || !check(x)) throw new Error(`--${name}: bad value ${JSON.stringify(value)}\n${USAGE}`);
  return x;
}

export function parseMakeDataArgs(argv: string[]): MakeDataOptions | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      out: { type: 'string' }, 'train-prompts': { type: 'string' }, 'eval-prompts': { type: 'string' },
      samples: { type: 'string' }, seed: { type: 'string' }, model: { type: 'string' }, 'max-new-tokens': { type: 'string' },
      temperature: { type: 'string' }, 'top-p': { type: 'string' }, 'top-k': { type: 'string' }, gzip: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return null;
  if (values.out === undefined) throw new Error(`--out DIR is required\n${USAGE}`);
  const model = values.model ?? defaultModelDir();
  if (model === null) throw new Error(`no --model given and ../shared/models/stories260K is not there\n${USAGE}`);
  const d = MAKE_DATA_DEFAULTS;
  const int = (x: number): boolean => Number.isInteger(x) && x >= 0;
  return {
    out: values.out,
    model,
    trainPrompts: parseNumber('train-prompts', values['train-prompts'], d.trainPrompts, int),
    evalPrompts: parseNumber('eval-prompts', values['eval-prompts'], d.evalPrompts, int),
    samples: parseNumber('samples', values.samples, d.samples, (x) => int(x) && x >= 2),
    seed: parseNumber('seed', values.seed, d.seed, int),
    maxNewTokens: parseNumber('max-new-tokens', values['max-new-tokens'], d.maxNewTokens, (x) => int(x) && x >= 1),
    temperature: parseNumber('temperature', values.temperature, d.temperature, (x) => x > 0),
    topP: parseNumber('top-p', values['top-p'], d.topP, (x) => x > 0 && x <= 1),
    topK: parseNumber('top-k', values['top-k'], d.topK, int),
    gzip: values.gzip ?? false,
  };
}

async function main(): Promise<void> {
  const opts = parseMakeDataArgs(process.argv.slice(2));
  if (opts === null) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const { files, stats } = await makeData({ ...opts, log: (l) => process.stderr.write(`${l}\n`) });
  const t = stats.train as SplitStats;
  const e = stats.eval as SplitStats;
  process.stdout.write(
    `base rate ${stats.base_rate} (train ${t.base_rate}, eval ${e.base_rate}); pairs: train ${t.pairs} of ${t.prompts} prompts, ` +
      `eval ${e.pairs} of ${e.prompts}; ${stats.seconds} s\n${files.map((f) => `  ${f}`).join('\n')}\n`,
  );
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`make-data: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
