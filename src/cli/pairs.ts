// The bridge from the commands' data options (train, eval, compare, data) to the data layer's reader (src/data/dataset.ts).

import type { TokenPair } from '../data/collate.js';
import { describeStats, loadPreferencePairs, type DataOptions, type DataStats } from '../data/dataset.js';
import type { Tokenizer } from '../data/tokenizer.js';
import type { TrainConfig } from '../train/config.js';

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

type DataKeys = 'max_length' | 'max_prompt_length' | 'max_completion_length' | 'truncation_mode' | 'skip_invalid' |
  'dataset_split' | 'prompt_column' | 'chosen_column' | 'rejected_column' | 'system_column';

/** The data options of a command's resolved options (train, eval, compare, data share these names). */
export function dataLimitsOf(c: Pick<TrainConfig, DataKeys>): DataLimits {
  return {
    maxLength: c.max_length, maxPromptLength: c.max_prompt_length, maxCompletionLength: c.max_completion_length,
    truncationMode: c.truncation_mode, skipInvalid: c.skip_invalid, split: c.dataset_split,
    columns: { prompt: c.prompt_column, chosen: c.chosen_column, rejected: c.rejected_column, system: c.system_column },
  };
}

/** The data layer's options for these limits: unset columns keep the data layer's default names. */
export function dataOptionsFrom(limits: DataLimits): DataOptions {
  const columns: NonNullable<DataOptions['columns']> = {};
  for (const side of ['prompt', 'chosen', 'rejected', 'system'] as const) {
    const name = limits.columns[side];
    if (name !== null) columns[side] = name;
  }
  return {
    maxLength: limits.maxLength, maxPromptLength: limits.maxPromptLength, maxCompletionLength: limits.maxCompletionLength,
    truncationMode: limits.truncationMode, skipInvalid: limits.skipInvalid, columns,
    ...(limits.split === null ? {} : { split: limits.split }),
  };
}

export async function loadPairs(path: string, tokenizer: Tokenizer, limits: DataLimits):
  Promise<{ pairs: TokenPair[]; stats: DataStats; summary: string }> {
  const { pairs, stats } = await loadPreferencePairs(path, tokenizer, dataOptionsFrom(limits));
  if (pairs.length === 0) throw new Error(`${path}: no usable preference pairs (${describeStats(stats)})`);
  return { pairs, stats, summary: `${path}: ${describeStats(stats)}` };
}
