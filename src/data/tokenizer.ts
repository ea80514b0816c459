// The model folder's tokenizer: tokenizer.json encoded by @huggingface/tokenizers (the same ids as the Rust
// reference), with the facts TRL reads from tokenizer_config.json: BOS/EOS/PAD tokens, add_bos_token and the chat
// template. createTokenizer is pure; loadTokenizer reads the files.

import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { ChatTemplate, pickChatTemplate, type ChatMessage, type ChatTemplateOptions } from './chat-template.js';
import { DataError, briefly } from './errors.js';
import { checkTokenizerJson } from './tokenizer-checks.js';
import { applySpeedups } from './tokenizer-speedups.js';

/** a file of the folder the tokenizer files came from, for messages (plain text: this module reads no files) */
const inFolder = (folder: string, name: string): string => (folder === '' || /[\\/]$/.test(folder) ? `${folder}${name}` : `${folder}/${name}`);

export type { ChatMessage, ChatTemplateOptions } from './chat-template.js';

export interface Tokenizer {
  /** ids of the text as written; unlike transformers, special tokens (BOS...) are added only with addSpecialTokens */
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  decode(ids: readonly number[], opts?: { skipSpecialTokens?: boolean }): string;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  /** true when the tokenizer puts BOS in front of encoded text (add_bos_token, or a post-processor that does) */
  readonly addBosToken: boolean;
  readonly chatTemplate: string | null;
  applyChatTemplate(messages: readonly ChatMessage[], opts?: ChatTemplateOptions): string;
  /** ids run 0..vocabSize-1, added tokens included */
  readonly vocabSize: number;
  tokenToId(token: string): number | null;
}

/** The JSON files of a model folder, already parsed. */
export interface TokenizerFiles {
  /** tokenizer.json */
  tokenizer: Record<string, unknown>;
  /** tokenizer_config.json ({} when absent) */
  config: Record<string, unknown>;
  /** special_tokens_map.json, consulted for tokens the config does not name */
  specialTokensMap?: Record<string, unknown>;
  /** chat_template.jinja, which newer transformers writes instead of the config entry */
  chatTemplateFile?: string;
  /** where the files came from, for messages */
  origin?: string;
  /** config.json model_type, which tells transformers the tokenizer class when tokenizer_config.json does not */
  modelType?: string;
}

const SPECIAL_TOKEN_NAMES = ['bos_token', 'eos_token', 'pad_token', 'unk_token'] as const;
type SpecialTokenName = (typeof SPECIAL_TOKEN_NAMES)[number];

/**
 * GPT-2's own folder names no special token: transformers takes them from the GPT2Tokenizer class defaults.
 * The same defaults apply here when the files are silent and the class (or the model type) is GPT-2's.
 */
const GPT2_DEFAULTS: Partial<Record<SpecialTokenName, string>> = {
  bos_token: '<|endoftext|>',
  eos_token: '<|endoftext|>',
  unk_token: '<|endoftext|>',
};

function classDefaults(files: TokenizerFiles): Partial<Record<SpecialTokenName, string>> {
  const cls = files.config.tokenizer_class;
  const gpt2 = typeof cls === 'string' ? /^GPT2Tokenizer(Fast)?$/.test(cls) : files.modelType === 'gpt2';
  return gpt2 ? GPT2_DEFAULTS : {};
}

/**
 * Special tokens are written as a string or as an AddedToken object `{content: "..."}`; null (or absent) means
 * none. Anything else (`bos_token: 5`) is a mistake that used to be ignored silently, leaving the model without
 * the token the user meant: it is refused, naming the file and the field.
 */
function specialTokenText(value: unknown, name: string, file: string): string | null {
  if (value === undefined || value === null || typeof value === 'string') return value ?? null;
  if (typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  const shown = JSON.stringify(value)?.slice(0, 60) ?? String(value);
  throw new DataError(`${file}: ${name} is ${shown}; it must be the token's text ("<s>") or {"content": "<s>", ...}`);
}

export function createTokenizer(files: TokenizerFiles, opts: { speedups?: boolean } = {}): Tokenizer {
  const origin = files.origin ?? 'tokenizer';
  checkTokenizerJson(files.tokenizer, files.origin === undefined ? 'tokenizer.json' : inFolder(origin, 'tokenizer.json'));
  let hf: HfTokenizer;
  try {
    hf = new HfTokenizer(files.tokenizer, files.config);
  } catch (err) {
    throw new DataError(`${origin}: tokenizer.json cannot be loaded (${briefly(err)}); is it a Hugging Face tokenizers file?`);
  }
  if (opts.speedups ?? true) applySpeedups(hf);
  const tokenToId = (token: string): number | null => hf.token_to_id(token) ?? null;

  const texts = {} as Record<SpecialTokenName, string | null>;
  const ids = {} as Record<SpecialTokenName, number | null>;
  const defaults = classDefaults(files);
  const configFile = inFolder(origin, 'tokenizer_config.json');
  for (const name of SPECIAL_TOKEN_NAMES) {
    const named = name in files.config || (files.specialTokensMap !== undefined && name in files.specialTokensMap);
    const text = named
      ? specialTokenText(files.config[name], name, configFile) ??
        specialTokenText(files.specialTokensMap?.[name], name, inFolder(origin, 'special_tokens_map.json'))
      : defaults[name] ?? null;
    texts[name] = text;
    ids[name] = text === null ? null : tokenToId(text);
    if (text !== null && ids[name] === null) {
      throw new DataError(
        `${origin}: ${name} ${JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}...` : text)} is not in tokenizer.json's vocabulary; fix ${name} in tokenizer_config.json`,
      );
    }
  }

  let maxId = -1;
  for (const id of hf.get_vocab(true).values()) maxId = Math.max(maxId, id);

  // the library's own failures on a text (a pattern that cannot run, a config it misreads) name the tokenizer
  const failed = (what: string, err: unknown): DataError =>
    new DataError(`${origin}: the tokenizer (tokenizer.json) failed to ${what} (${briefly(err)})`);
  const encode = (text: string, opts: { addSpecialTokens?: boolean } = {}): number[] => {
    try {
      return hf.encode(text, { add_special_tokens: opts.addSpecialTokens ?? false }).ids;
    } catch (err) {
      throw failed('encode a text', err);
    }
  };

  // add_bos_token in the config is what the slow tokenizers obey; fast ones put BOS in their post-processor.
  // Either counts, so the config wins when it says, and otherwise we watch what encoding does.
  const configured = files.config.add_bos_token;
  const addBosToken =
    ids.bos_token !== null &&
    (typeof configured === 'boolean' ? configured : encode('a', { addSpecialTokens: true })[0] === ids.bos_token);

  const templateSource = files.chatTemplateFile ?? pickChatTemplate(files.config.chat_template);
  const templateTokens: Record<string, string> = {};
  for (const name of SPECIAL_TOKEN_NAMES) templateTokens[name] = texts[name] ?? '';
  const templateOrigin = files.chatTemplateFile !== undefined ? inFolder(origin, 'chat_template.jinja') : inFolder(origin, 'tokenizer_config.json');
  const template = templateSource === null ? null : new ChatTemplate(templateSource, templateTokens, templateOrigin);

  return {
    encode,
    decode: (tokenIds, opts = {}) => {
      try {
        return hf.decode([...tokenIds], { skip_special_tokens: opts.skipSpecialTokens ?? false });
      } catch (err) {
        throw failed('decode ids', err);
      }
    },
    bosTokenId: ids.bos_token,
    eosTokenId: ids.eos_token,
    padTokenId: ids.pad_token,
    addBosToken,
    chatTemplate: templateSource,
    applyChatTemplate(messages, opts) {
      if (template === null) {
        throw new DataError(
          `${origin} has no chat_template (tokenizer_config.json or chat_template.jinja); conversational rows ` +
            'need one — use a chat model folder, or give prompt/chosen/rejected as plain strings',
        );
      }
      return template.render(messages, opts);
    },
    vocabSize: maxId + 1,
    tokenToId,
  };
}

/** TRL pads with the tokenizer's pad token, or its EOS when it has none. */
export function padTokenIdOf(tokenizer: Tokenizer): number {
  const id = tokenizer.padTokenId ?? tokenizer.eosTokenId;
  if (id === null) throw new DataError('the tokenizer has neither pad_token nor eos_token; set one in tokenizer_config.json');
  return id;
}

