// Sampling story continuations from a model folder the way the stories experiment does everywhere (making the
// preference pairs, and the win rates of the trained models): the library's sampler with a KV cache, one fresh
// cache per sample, stop at BOS (stories260K ends a story by starting the next) or EOS.

import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodePrompt, generateTokens, loadModel, loadTokenizer, type Model, type SamplingOptions, type Tokenizer } from '../../src/index.js';
import { Generator } from '../../src/model/generator.js';

/** repository root (dist/experiments/stories/ -> ../../..) */
export const repoRoot = resolve(fileURLToPath(new URL('../../..', import.meta.url)));

/** ../shared/models/stories260K next to the repository (ORPO_SHARED_DIR overrides ../shared), or null */
export function defaultModelDir(): string | null {
  const dir = join(process.env.ORPO_SHARED_DIR ?? join(repoRoot, '..', 'shared'), 'models', 'stories260K');
  return existsSync(join(dir, 'config.json')) ? dir : null;
}

export interface StorySampling extends SamplingOptions {
  maxNewTokens: number;
}

/** The experiment's sampling settings (pairs and win rates alike). */
export const STORY_SAMPLING: Readonly<StorySampling> = Object.freeze({ temperature: 1, topK: 0, topP: 1, maxNewTokens: 48 });

export interface StoryModel {
  model: Model;
  tokenizer: Tokenizer;
  /** ids that end a sample: BOS (the model's own story end) and EOS */
  stopTokenIds: number[];
}

export async function loadStoryModel(dir: string, threads = 1): Promise<StoryModel> {
  const model = await loadModel(dir);
  // one thread: the tiny model gains nothing from more, and a fixed count keeps every sum in the same order
  model.kernels.setThreads(threads);
  const tokenizer = await loadTokenizer(dir);
  const stops = new Set<number>();
  for (const id of [tokenizer.bosTokenId, tokenizer.eosTokenId, model.config.bosTokenId, model.config.eosTokenId].flat()) {
    if (typeof id === 'number') stops.add(id);
  }
  return { model, tokenizer, stopTokenIds: [...stops] };
}

export interface StorySample {
  /** the continuation as text, written so that the data layer's tokenisation gives back `tokens` */
  text: string;
  /** new token ids, the stop token excluded */
  tokens: number[];
  stopReason: 'eos' | 'max_new_tokens' | 'context_full';
  /**
   * whether encoding `text` on its own (as the data layer encodes a response) gives exactly `tokens`: then
   * prompt ids + response ids are the sequence the model sampled. Text that starts with a non-word token (a
   * newline, punctuation) or holds partial characters does not.
   */
  roundTrip: boolean;
}

/** Per-sample seeds: distinct for every (seed, prompt, sample) and independent of how many are drawn. */
export function sampleSeed(seed: number, promptIndex: number, sample: number): number {
  let h = (seed >>> 0) ^ 0x9e3779b9;
  for (const v of [promptIndex, sample]) {
    h = Math.imul(h ^ (v >>> 0), 0x85ebca6b) >>> 0;
    h = (h ^ (h >>> 13)) >>> 0;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
  }
  return h;
}

/**
 * One sampled continuation of `prompt` (encoded as training encodes prompts: BOS + text).
 *
 * The text is the decoded tokens without the stop token; the tokenizer's decoder drops the leading space of the
 * first word, which is right for this data layer: it encodes a response on its own and the Llama normalizer puts
 * the word-start marker back ("She" -> "▁She"), so a leading " " would become an extra "▁" token.
 */
export function sampleStory(sm: StoryModel, prompt: string, seed: number, opts: StorySampling = STORY_SAMPLING): StorySample {
  const { model, tokenizer } = sm;
  const ids = encodePrompt(tokenizer, prompt);
  const generator = new Generator(model);
  const out = generateTokens((t) => generator.nextLogits(t), ids, { ...opts, stopTokenIds: sm.stopTokenIds, seed }, model.config.maxPositions);
  const tokens = out.stopReason === 'eos' ? out.tokens.slice(0, -1) : out.tokens;
  // (a sample can end at once: the model starts a new story straight away)
  const text = tokens.length === 0 ? '' : tokenizer.decode(tokens, { skipSpecialTokens: true });
  const again = tokenizer.encode(text);
  const roundTrip = again.length === tokens.length && again.every((id, i) => id === tokens[i]);
  return { text, tokens, stopReason: out.stopReason, roundTrip };
}
