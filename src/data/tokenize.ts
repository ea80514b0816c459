// TRL's ORPO tokenisation of one preference row: prompt tokens (BOS in front when the tokenizer adds one, never
// twice), each response's tokens + EOS, then truncation so prompt + longer response fits max_length.
//
// Prompt and responses are encoded separately, so one prompt serves both rows by construction: TRL encodes
// prompt+response and splits it, which lets a token merge across the boundary give chosen and rejected different
// prompts. With byte-level BPE and the whitespace-led responses produced by formats.ts the two ways give the same
// ids (all 4,614 HH-RLHF responses with Qwen3's tokenizer do); where a merge would happen, splitting keeps the
// prompt identical, which the shared-prompt batch needs.

import type { TokenPair } from './collate.js';
import type { DropReason, PreferenceText } from './formats.js';
import type { Tokenizer } from './tokenizer.js';

export interface TruncationOptions {
  /** prompt + longer response, in tokens (TRL max_length, default 1024) */
  maxLength: number;
  /** cap applied to the prompt when a row is too long (TRL max_prompt_length, default 512); null: as needed */
  maxPromptLength: number | null;
  /** cap on each response, applied first (keeps the start; default null: none) */
  maxCompletionLength: number | null;
  /** which end of a too long prompt survives (TRL truncation_mode, default keep_end) */
  truncationMode: 'keep_end' | 'keep_start';
}

export const TRL_TRUNCATION_DEFAULTS: TruncationOptions = {
  maxLength: 1024,
  maxPromptLength: 512,
  maxCompletionLength: null,
  truncationMode: 'keep_end',
};

/** Settings that could leave a row over max_length or with an empty response are refused up front. */
export function validateTruncation(opts: TruncationOptions): void {
  const { maxLength, maxPromptLength, maxCompletionLength } = opts;
  if (!Number.isInteger(maxLength) || maxLength < 2) {
    throw new Error(`max_length must be an integer >= 2 (one prompt and one response token), got ${maxLength}`);
  }
  if (maxPromptLength !== null && (!Number.isInteger(maxPromptLength) || maxPromptLength < 1 || maxPromptLength >= maxLength)) {
    throw new Error(
      `max_prompt_length (${maxPromptLength}) must be an integer in [1, max_length) so responses keep at least one token; ` +
        `max_length is ${maxLength}: set --max-prompt-length below ${maxLength}, or leave it unset (it then follows max_length)`,
    );
  }
  if (maxCompletionLength !== null && (!Number.isInteger(maxCompletionLength) || maxCompletionLength < 1)) {
    throw new Error(`max_completion_length must be an integer >= 1 or null, got ${maxCompletionLength}`);
  }
  if (opts.truncationMode !== 'keep_end' && opts.truncationMode !== 'keep_start') {
    throw new Error(`truncation_mode must be keep_end or keep_start, got ${String(opts.truncationMode)}`);
  }
}

export type TokenizedRow =
  | { ok: true; pair: TokenPair; truncatedPrompt: boolean; truncatedResponse: boolean }
  | { ok: false; reason: DropReason };

/**
 * TRL's add_eos_token_if_needed (ORPOTrainer, DPOTrainer, CPOTrainer): EOS is appended unless the response's last
 * token already is it. With a ChatML template the assistant turn ends "<|im_end|>\n", so a Qwen response whose
 * eos_token is <|im_end|> ends "<|im_end|>\n<|im_end|>" in TRL and here alike (test/data-qwen3.test.ts pins it):
 * the numbers match TRL's, at the cost of one extra learned token.
 */
function withEos(ids: number[], eos: number): number[] {
  if (ids[ids.length - 1] !== eos) ids.push(eos);
  return ids;
}

/** The prompt length a too long row is cut to: max_prompt_length, or when that is null whatever the responses leave
 * (at least half of max_length, so a long reply cannot push the whole context out). */
function promptBudget(opts: TruncationOptions, longerResponse: number): number {
  if (opts.maxPromptLength !== null) return opts.maxPromptLength;
  return Math.min(opts.maxLength - 1, Math.max(opts.maxLength - longerResponse, Math.floor(opts.maxLength / 2)));
}

/** A prompt's ids as training sees them: BOS in front when the tokenizer adds one, never twice (a chat template
 * may have written it already). Generation should encode its prompts with this too. */
export function encodePrompt(tokenizer: Tokenizer, text: string): number[] {
  const ids = tokenizer.encode(text);
  const bos = tokenizer.bosTokenId;
  if (bos !== null && ids[0] !== bos) ids.unshift(bos);
  return ids;
}

export function tokenizePreferenceText(text: PreferenceText, tokenizer: Tokenizer, opts: TruncationOptions): TokenizedRow {
  const eos = tokenizer.eosTokenId;
  if (eos === null) throw new Error('the tokenizer has no eos_token, so responses cannot be ended; set eos_token in tokenizer_config.json');
  const prompt = encodePrompt(tokenizer, text.prompt);
  return truncatePair({ prompt, chosen: withEos(tokenizer.encode(text.chosen), eos), rejected: withEos(tokenizer.encode(text.rejected), eos) }, opts);
}

/** TRL's truncation of a tokenised row (prompt with its BOS, responses with their EOS); the input is not changed. */
export function truncatePair(full: TokenPair, opts: TruncationOptions): TokenizedRow {
  let { prompt, chosen, rejected } = full;
  let truncatedPrompt = false;
  let truncatedResponse = false;
  if (opts.maxCompletionLength !== null && Math.max(chosen.length, rejected.length) > opts.maxCompletionLength) {
    chosen = chosen.slice(0, opts.maxCompletionLength);
    rejected = rejected.slice(0, opts.maxCompletionLength);
    truncatedResponse = true;
  }
  // TRL: first the prompt is cut to max_prompt_length, then, if still too long, the responses to what is left
  const longer = Math.max(chosen.length, rejected.length);
  if (prompt.length + longer > opts.maxLength) {
    const keep = promptBudget(opts, longer);
    if (prompt.length > keep) {
      prompt = opts.truncationMode === 'keep_end' ? prompt.slice(prompt.length - keep) : prompt.slice(0, keep);
      truncatedPrompt = true;
    }
    if (prompt.length + longer > opts.maxLength) {
      const responseBudget = opts.maxLength - (opts.maxPromptLength ?? prompt.length);
      chosen = chosen.slice(0, responseBudget);
      rejected = rejected.slice(0, responseBudget);
      truncatedResponse = true;
    }
  }
  if (chosen.length === rejected.length && chosen.every((id, i) => id === rejected[i])) {
    return { ok: false, reason: 'identical_after_truncation' };
  }
  return { ok: true, pair: { prompt, chosen, rejected }, truncatedPrompt, truncatedResponse };
}
