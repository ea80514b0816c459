// A preference dataset file (or folder) in, tokenised pairs out, with an account of every row: read, used,
// dropped by reason, truncated. Streaming first (streamPreferencePairs); loadPreferencePairs collects it.

import type { TokenPair } from './collate.js';
import { DataError, type RowSource } from './errors.js';
import {
  exampleToText, parsePreferenceRow, unusableReason, type ColumnNames, type DropReason, type PreferenceExample, type PreferenceText,
} from './formats.js';
import { isInvalid, readRows, resolveDataFiles } from './readers.js';
import { TRL_TRUNCATION_DEFAULTS, tokenizePreferenceText, validateTruncation, type TruncationOptions } from './tokenize.js';
import type { Tokenizer } from './tokenizer.js';

export interface DataOptions extends TruncationOptions {
  /** other names for the prompt/chosen/rejected/system fields */
  columns?: ColumnNames;
  /** count and skip malformed rows instead of stopping at the first */
  skipInvalid: boolean;
  /** which split of a dataset folder (default: train, or every file when the folder has no splits) */
  split?: string;
  /** stop after this many rows read */
  limit?: number;
}

export const DEFAULT_DATA_OPTIONS: DataOptions = { ...TRL_TRUNCATION_DEFAULTS, skipInvalid: false };

export interface DataStats {
  files: string[];
  rowsRead: number;
  rowsUsed: number;
  dropped: Record<DropReason, number>;
  /** rows with the prompt or a response cut to fit */
  truncated: number;
  truncatedPrompt: number;
  truncatedResponse: number;
  /** rows by format: implicit prompt (prompt taken from chosen/rejected), conversational (chat template applied) */
  implicitPrompt: number;
  conversational: number;
  /** the first few skipped rows' errors, so --skip-invalid never hides what was wrong */
  invalidExamples: string[];
}

export function emptyStats(files: string[] = []): DataStats {
  return {
    files,
    rowsRead: 0,
    rowsUsed: 0,
    dropped: { empty_response: 0, chosen_equals_rejected: 0, identical_after_truncation: 0, invalid: 0 },
    truncated: 0,
    truncatedPrompt: 0,
    truncatedResponse: 0,
    implicitPrompt: 0,
    conversational: 0,
    invalidExamples: [],
  };
}

const INVALID_EXAMPLES_KEPT = 5;

export interface TokenizedExample {
  pair: TokenPair;
  /** the text the tokens came from (after templating and prompt extraction, before truncation) */
  text: PreferenceText;
  source: RowSource;
}

/**
 * Tokenised pairs one row at a time; `stats` is updated as rows go by and is complete when the iterator ends.
 * Errors stop the stream unless skipInvalid, in which case they are counted under dropped.invalid.
 */
export async function* streamPreferencePairs(
  path: string,
  tokenizer: Tokenizer,
  opts: DataOptions,
  stats: DataStats = emptyStats(),
): AsyncGenerator<TokenizedExample> {
  validateTruncation(opts);
  stats.files = await resolveDataFiles(path, opts.split);
  const skip = (error: DataError): void => {
    if (!opts.skipInvalid) throw error;
    stats.dropped.invalid++;
    if (stats.invalidExamples.length < INVALID_EXAMPLES_KEPT) stats.invalidExamples.push(error.message);
  };
  for await (const item of readRows(path, { split: opts.split })) {
    if (opts.limit !== undefined && stats.rowsRead >= opts.limit) break;
    stats.rowsRead++;
    if (isInvalid(item)) {
      skip(item.error);
      continue;
    }
    let text: PreferenceText;
    let example: PreferenceExample;
    try {
      example = parsePreferenceRow(item.values, opts.columns ?? {}, item.source);
      const unusable = unusableReason(example);
      if (unusable) {
        stats.dropped[unusable]++;
        continue;
      }
      text = exampleToText(example, tokenizer);
    } catch (err) {
      if (!(err instanceof Error)) throw err;
      // template errors (raise_exception in the template, unknown roles) belong to the row too
      skip(err instanceof DataError ? err : new DataError(err.message, item.source));
      continue;
    }
    const row = tokenizePreferenceText(text, tokenizer, opts);
    if (!row.ok) {
      stats.dropped[row.reason]++;
      continue;
    }
    stats.rowsUsed++;
    if (example.implicitPrompt) stats.implicitPrompt++;
    if (example.kind === 'conversation') stats.conversational++;
    if (row.truncatedPrompt || row.truncatedResponse) stats.truncated++;
    if (row.truncatedPrompt) stats.truncatedPrompt++;
    if (row.truncatedResponse) stats.truncatedResponse++;
    yield { pair: row.pair, text, source: item.source };
  }
  if (stats.rowsUsed === 0) {
    throw new DataError(`${path}: no usable rows (${describeStats(stats)})`);
  }
}

export async function loadPreferencePairs(
  path: string,
  tokenizer: Tokenizer,
  opts: DataOptions,
): Promise<{ pairs: TokenPair[]; stats: DataStats }> {
  const stats = emptyStats();
  const pairs: TokenPair[] = [];
  for await (const row of streamPreferencePairs(path, tokenizer, opts, stats)) pairs.push(row.pair);
  return { pairs, stats };
}

/** One line: "2312 read, 2300 used, dropped 12 (chosen_equals_rejected 12), 40 truncated". */
export function describeStats(stats: DataStats): string {
  const drops = Object.entries(stats.dropped).filter(([, n]) => n > 0);
  const dropped = drops.reduce((s, [, n]) => s + n, 0);
  const reasons = drops.map(([k, n]) => `${k} ${n}`).join(', ');
  return `${stats.rowsRead} read, ${stats.rowsUsed} used, dropped ${dropped}${reasons ? ` (${reasons})` : ''}, ${stats.truncated} truncated`;
}
