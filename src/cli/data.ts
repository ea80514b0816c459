// `orpo data stats` and `orpo data show`: the dataset as the model will see it, before any training. stats counts
// rows read / used / dropped by reason / truncated, token length percentiles and the padding a batch size costs;
// show prints the first rows decoded from the very token ids training would use.

import { planBatches, paddingStats, pairLength } from '../data/batching.js';
import type { TokenPair } from '../data/collate.js';
import { emptyStats, streamPreferencePairs, type DataOptions, type DataStats, type TokenizedExample } from '../data/dataset.js';
import { describeSource } from '../data/errors.js';
import { resolveDataFiles } from '../data/readers.js';
import { summarizeLengths, type LengthSummary } from '../data/summary.js';
import { type Tokenizer } from '../data/tokenizer.js';
import { loadTokenizer } from '../io/tokenizer-files.js';
import { TRAIN_OPTIONS, type TrainConfig } from '../train/config.js';
import { OptionError, type OptionTable } from '../train/options.js';
import { dataLimitsOf, dataOptionsFrom } from './pairs.js';
import { resolveCommandOptions } from './args.js';

type SharedKeys = 'model' | 'dataset' | 'max_length' | 'max_prompt_length' | 'max_completion_length' | 'truncation_mode' |
  'skip_invalid' | 'dataset_split' | 'prompt_column' | 'chosen_column' | 'rejected_column' | 'system_column' | 'per_device_train_batch_size' | 'seed';

export type DataCommandConfig = Pick<TrainConfig, SharedKeys> & {
  limit: number | null;
  json: boolean;
  n: number;
};

const shared = <K extends keyof TrainConfig>(keys: readonly K[]): OptionTable<Pick<TrainConfig, K>> =>
  Object.fromEntries(keys.map((k) => [k, TRAIN_OPTIONS[k]])) as unknown as OptionTable<Pick<TrainConfig, K>>;

// in --help order: --help prints a group heading whenever the group changes
export const DATA_COMMAND_OPTIONS: OptionTable<DataCommandConfig> = {
  ...shared<SharedKeys>(['model', 'dataset', 'dataset_split', 'skip_invalid', 'prompt_column', 'chosen_column', 'rejected_column', 'system_column']),
  ...shared<SharedKeys>(['max_length', 'max_prompt_length', 'max_completion_length', 'truncation_mode', 'per_device_train_batch_size', 'seed']),
  limit: { type: 'int', default: null, min: 1, doc: 'read at most this many rows (a quick look at a large dataset)' },
  json: { type: 'bool', default: false, doc: 'print one JSON object instead of text' },
  n: { type: 'int', default: 3, min: 1, doc: 'data show: how many rows to print (also -n)' },
};

const USAGE = `Usage: orpo data stats --dataset FILE --model DIR [--json] [options]
       orpo data show  --dataset FILE --model DIR [-n 3] [--json] [options]

stats: rows read / used / dropped by reason / truncated, token length percentiles, padding fraction per batch.
show:  the first rows as the model will see them (decoded from the token ids, special tokens shown).`;

export function dataOptionsOf(c: DataCommandConfig): DataOptions {
  return { ...dataOptionsFrom(dataLimitsOf(c)), ...(c.limit === null ? {} : { limit: c.limit }) };
}

/** Where the commands print; tests pass their own. */
export type Print = (text: string) => void;
const toStdout: Print = (text) => {
  process.stdout.write(text);
};

export interface DatasetReport {
  dataset: string;
  model: string;
  stats: DataStats;
  tokens: { prompt: LengthSummary; chosen: LengthSummary; rejected: LengthSummary; pair: LengthSummary };
  padding: { batch_size: number; file_order: number; shuffled: number; grouped_by_length: number };
}

export function datasetReport(dataset: string, model: string, pairs: readonly TokenPair[], stats: DataStats,
  batchSize: number, seed: number): DatasetReport {
  const fraction = (seeded: boolean, groupByLength: boolean): number =>
    paddingStats(pairs, planBatches(pairs, { batchSize, groupByLength, seed: seeded ? seed : null })).paddingFraction;
  return {
    dataset,
    model,
    stats,
    tokens: {
      prompt: summarizeLengths(pairs.map((p) => p.prompt.length)),
      chosen: summarizeLengths(pairs.map((p) => p.chosen.length)),
      rejected: summarizeLengths(pairs.map((p) => p.rejected.length)),
      pair: summarizeLengths(pairs.map(pairLength)),
    },
    padding: { batch_size: batchSize, file_order: fraction(false, false), shuffled: fraction(true, false), grouped_by_length: fraction(true, true) },
  };
}

const percent = (x: number): string => `${(100 * x).toFixed(1)}%`;

function formatReport(r: DatasetReport): string {
  const s = r.stats;
  const dropped = Object.entries(s.dropped).filter(([, n]) => n > 0);
  const lines = [
    `dataset    ${r.dataset}${s.files.length > 1 || s.files[0] !== r.dataset ? ` (${s.files.join(', ')})` : ''}`,
    `model      ${r.model}`,
    `rows       ${s.rowsRead} read, ${s.rowsUsed} used, ${dropped.reduce((a, [, n]) => a + n, 0)} dropped` +
      (dropped.length ? ` (${dropped.map(([k, n]) => `${k} ${n}`).join(', ')})` : ''),
    `truncated  ${s.truncated} rows (prompt cut ${s.truncatedPrompt}, response cut ${s.truncatedResponse})`,
    `format     of the rows used: ${s.rowsUsed - s.implicitPrompt} explicit prompt, ${s.implicitPrompt} implicit prompt; ` +
      `${s.conversational} conversational (chat template applied)`,
    ...s.invalidExamples.map((e) => `invalid    ${e}`),
    '',
    `tokens          ${['p50', 'p90', 'p99', 'max', 'mean'].map((h) => h.padStart(7)).join('')}`,
  ];
  for (const [name, t] of Object.entries(r.tokens)) {
    const label = name === 'pair' ? 'prompt+longer' : name;
    lines.push(`  ${label.padEnd(14)}${[t.p50, t.p90, t.p99, t.max].map((v) => String(v).padStart(7)).join('')}${t.mean.toFixed(1).padStart(7)}`);
  }
  lines.push(
    '',
    `padding    batch of ${r.padding.batch_size} pairs: ${percent(r.padding.shuffled)} of token slots are pads when shuffled, ` +
      `${percent(r.padding.grouped_by_length)} grouped by length, ${percent(r.padding.file_order)} in file order`,
  );
  return `${lines.join('\n')}\n`;
}

function showRow(index: number, row: TokenizedExample, tokenizer: Tokenizer): string {
  const { pair } = row;
  const part = (name: string, ids: readonly number[]): string =>
    `[${name}: ${ids.length} tokens]\n${tokenizer.decode(ids)}\n`;
  return (
    `── row ${index + 1} (${describeSource(row.source)}) ── ` +
    `prompt ${pair.prompt.length} + chosen ${pair.chosen.length} / rejected ${pair.rejected.length} tokens\n` +
    part('prompt', pair.prompt) + part('chosen', pair.chosen) + part('rejected', pair.rejected)
  );
}

async function runStats(c: DataCommandConfig, dataset: string, model: string, write: Print): Promise<number> {
  const tokenizer = await loadTokenizer(model);
  const stats = emptyStats();
  const pairs: TokenPair[] = [];
  for await (const row of streamPreferencePairs(dataset, tokenizer, dataOptionsOf(c), stats)) pairs.push(row.pair);
  const report = datasetReport(dataset, model, pairs, stats, c.per_device_train_batch_size, c.seed);
  write(c.json ? `${JSON.stringify(report)}\n` : formatReport(report));
  return 0;
}

async function runShow(c: DataCommandConfig, dataset: string, model: string, write: Print): Promise<number> {
  const tokenizer = await loadTokenizer(model);
  const shown: TokenizedExample[] = [];
  for await (const row of streamPreferencePairs(dataset, tokenizer, dataOptionsOf(c))) {
    shown.push(row);
    if (shown.length >= c.n) break;
  }
  if (c.json) {
    const decoded = shown.map((row) => ({
      source: describeSource(row.source),
      ...Object.fromEntries((['prompt', 'chosen', 'rejected'] as const).map((k) => [k, { text: tokenizer.decode(row.pair[k]), ids: row.pair[k] }])),
    }));
    write(`${JSON.stringify(decoded)}\n`);
  } else {
    write(shown.map((row, i) => showRow(i, row, tokenizer)).join('\n'));
  }
  return 0;
}

/** argv = the words after `orpo data`; returns the exit code. */
export async function runDataCommand(argv: readonly string[], write: Print = toStdout): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    write(`${USAGE}\n(orpo data stats --help lists the options)\n`);
    return sub === undefined ? 2 : 0;
  }
  if (sub !== 'stats' && sub !== 'show') throw new OptionError(`unknown data command '${sub}'; use 'orpo data stats' or 'orpo data show'`);
  const words = rest.map((w) => (w === '-n' ? '--n' : w));
  const c = await resolveCommandOptions(`data ${sub}`, USAGE, words, DATA_COMMAND_OPTIONS);
  if (c === null) return 0;
  if (c.dataset === null || c.model === null) throw new OptionError(`orpo data ${sub} needs --dataset FILE and --model DIR`);
  await resolveDataFiles(c.dataset, c.dataset_split ?? undefined); // a wrong dataset path fails before the tokenizer loads
  return sub === 'stats' ? runStats(c, c.dataset, c.model, write) : runShow(c, c.dataset, c.model, write);
}
