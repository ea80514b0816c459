// `orpo generate`: text from a model folder, greedy or sampled, streamed as it is produced.

import { availableParallelism } from 'node:os';
import { encodePrompt } from '../data/tokenize.js';
import { type Tokenizer } from '../data/tokenizer.js';
import { loadTokenizer } from '../io/tokenizer-files.js';
import { generateTokens, type Generation } from '../generate/generate.js';
import type { SamplingOptions } from '../generate/sample.js';
import type { DecoderBase } from '../model/base.js';
import { Generator } from '../model/generator.js';
import type { CausalLM } from '../model/types.js';
import { OptionError, type OptionTable } from '../train/options.js';
import { resolveCommandOptions } from './args.js';
import { loadModelOrAdapter } from './model-folder.js';

export interface GenerateConfig {
  model: string | null;
  prompt: string | null;
  chat: boolean;
  system: string | null;
  max_new_tokens: number;
  temperature: number;
  top_k: number;
  top_p: number;
  seed: number;
  threads: number | null;
  torch_dtype: 'float32' | 'bfloat16' | 'auto';
  json: boolean;
}

export const GENERATE_OPTIONS: OptionTable<GenerateConfig> = {
  model: { type: 'path', default: null, doc: 'Hugging Face model folder (config.json, *.safetensors, tokenizer.json)' },
  prompt: { type: 'string', default: null, doc: 'the text to continue (with --chat: the user message)' },
  chat: { type: 'bool', default: false, doc: "wrap the prompt as a user turn with the model's chat template (add_generation_prompt)" },
  system: { type: 'string', default: null, doc: 'with --chat: a system message before the user turn' },
  max_new_tokens: { type: 'int', default: 128, min: 1, doc: 'stop after this many new tokens' },
  temperature: { type: 'float', default: 0, min: 0, symbol: 'T', doc: '0 = greedy (argmax); otherwise sample from softmax(logits / T)' },
  top_k: { type: 'int', default: 0, min: 0, doc: 'sample only among the k most likely tokens (0 = all)' },
  top_p: { type: 'float', default: 1, min: 0, minExclusive: true, max: 1, doc: 'sample only among the most likely tokens holding probability p (nucleus)' },
  seed: { type: 'int', default: 42, min: 0, doc: 'seed of the sampler (same seed, same text)' },
  threads: { type: 'int', default: null, min: 1, doc: 'compute threads (none: all cores)' },
  torch_dtype: { type: 'enum', choices: ['float32', 'bfloat16', 'auto'], default: 'float32', doc: "the dtype the model's matrices are held in: float32, bfloat16 (half the memory, bf16 products: as a base trained with --torch-dtype bfloat16 computed), auto (the weight files' dtype)" },
  json: { type: 'bool', default: false, doc: 'print {prompt, completion, tokens, stop_reason} as JSON instead of streaming text' },
};

const USAGE = `Usage: orpo generate --model DIR --prompt TEXT [--chat] [--temperature T --top-k K --top-p P --seed S]

Continues the prompt until EOS or --max-new-tokens. Greedy by default.`;

/** Prompt text (or, with chat, the user turn rendered by the chat template) -> ids as training saw prompts. */
export function encodeGenerationPrompt(tokenizer: Tokenizer, text: string, chat: boolean, system: string | null): number[] {
  const rendered = chat
    ? tokenizer.applyChatTemplate([...(system === null ? [] : [{ role: 'system', content: system }]), { role: 'user', content: text }],
      { addGenerationPrompt: true })
    : text;
  return encodePrompt(tokenizer, rendered);
}

/** Token ids that end a generation: the tokenizer's EOS and config.json's eos_token_id(s). */
export function stopTokensOf(model: CausalLM, tokenizer: Tokenizer): number[] {
  const eos = model.config.eosTokenId;
  const ids = new Set<number>(eos === null ? [] : Array.isArray(eos) ? eos : [eos]);
  if (tokenizer.eosTokenId !== null) ids.add(tokenizer.eosTokenId);
  return [...ids];
}

export function generateText(model: DecoderBase, tokenizer: Tokenizer, promptIds: readonly number[],
  opts: SamplingOptions & { maxNewTokens: number; seed: number; onText?: (s: string) => void; extraStopTokenIds?: readonly number[] }): Generation & { text: string } {
  // stream by decoding everything so far and printing what is new: a token can be half a character (byte
  // fallback), so text is only shown once the decoded string has grown past it
  let shown = '';
  const tokens: number[] = [];
  const onToken = opts.onText === undefined ? undefined : (id: number): void => {
    tokens.push(id);
    const text = tokenizer.decode(tokens, { skipSpecialTokens: true });
    if (text.startsWith(shown) && text.length > shown.length && !text.endsWith('\uFFFD')) {
      opts.onText!(text.slice(shown.length));
      shown = text;
    }
  };
  // KV-cached: each new token runs the model on that token only
  const generator = new Generator(model);
  const out = generateTokens((tokens) => generator.nextLogits(tokens), promptIds, {
    ...opts, stopTokenIds: [...stopTokensOf(model, tokenizer), ...(opts.extraStopTokenIds ?? [])], onToken,
  }, model.config.maxPositions);
  const text = tokenizer.decode(out.tokens, { skipSpecialTokens: true });
  if (opts.onText !== undefined && text.startsWith(shown) && text.length > shown.length) opts.onText(text.slice(shown.length));
  return { ...out, text };
}

export async function runGenerate(argv: readonly string[]): Promise<number> {
  const c = await resolveCommandOptions('generate', USAGE, argv, GENERATE_OPTIONS);
  if (c === null) return 0;
  if (c.model === null || c.prompt === null) throw new OptionError('orpo generate needs --model DIR and --prompt TEXT');
  const model = await loadModelOrAdapter(c.model, { weightDtype: c.torch_dtype });
  model.kernels.setThreads(c.threads ?? availableParallelism());
  const tokenizer = await loadTokenizer(c.model);
  if (c.system !== null && !c.chat) throw new OptionError('--system is a chat message: add --chat (the prompt then goes through the chat template)');
  if (c.chat && tokenizer.chatTemplate === null) {
    throw new OptionError(`--chat renders the prompt with the model's chat template, and ${c.model} has none (no chat_template in ` +
      'tokenizer_config.json, no chat_template.jinja): drop --chat to continue the prompt as plain text, or use a chat model');
  }
  const ids = encodeGenerationPrompt(tokenizer, c.prompt, c.chat, c.system);
  const sampling = { temperature: c.temperature, topK: c.top_k, topP: c.top_p, maxNewTokens: c.max_new_tokens, seed: c.seed };
  if (c.json) {
    const out = generateText(model, tokenizer, ids, sampling);
    process.stdout.write(`${JSON.stringify({ prompt: c.prompt, completion: out.text, tokens: out.tokens, stop_reason: out.stopReason })}\n`);
    return 0;
  }
  const out = generateText(model, tokenizer, ids, { ...sampling, onText: (s) => process.stdout.write(s) });
  process.stdout.write('\n');
  process.stderr.write(`[${out.tokens.length} tokens, stopped: ${out.stopReason}]\n`);
  return 0;
}
