// The bridge from `orpo train`/`orpo eval` options to the data layer's reader (src/data/dataset.ts).

import type { TokenPair } from '../data/collate.js';
import { describeStats, loadPreferencePairs, type DataOptions, type DataStats } from '../data/dataset.js';
import type { Tokenizer } from '../data/tokenizer.js';

/** The data options every command that reads pairs shares (TRL names in the tables). */
export interface DataLimits {
  maxLength: number;
  maxPromptLength: number | null;
  maxCompletionLength: number | null;
  truncationMode: 'keep_end' | 'keep_start';
  skipInvalid: boolean;
  split: string | null;
  columns: { prompt: string | null; chosen: string | null; rejected: string | null; system: string | null };
}

export async function loadPairs(path: string, tokenizer: Tokenizer, limits: DataLimits):
  Promise<{ pairs: TokenPair[]; stats: DataStats; summary: string }> {
  const columns: NonNullable<DataOptions['columns']> = {};
  if (limits.columns.prompt !== null) columns.prompt = limits.columns.prompt;
  if (limits.columns.chosen !== null) columns.chosen = limits.columns.chosen;
  if (limits.columns.rejected !== null) columns.rejected = limits.columns.rejected;
  if (limits.columns.system !== null) columns.system = limits.columns.system;
  const opts: DataOptions = {
    maxLength: limits.maxLength, maxPromptLength: limits.maxPromptLength, maxCompletionLength: limits.maxCompletionLength,
    truncationMode: limits.truncationMode, skipInvalid: limits.skipInvalid, columns,
    ...(limits.split === null ? {} : { split: limits.split }),
  };
  const { pairs, stats } = await loadPreferencePairs(path, tokenizer, opts);
  if (pairs.length === 0) throw new Error(`${path}: no usable preference pairs (${describeStats(stats)})`);
  return { pairs, stats, summary: `${path}: ${describeStats(stats)}` };
}
