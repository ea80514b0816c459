// A byte-level BPE tokenizer small enough to reason about by hand, built in memory for the data tests:
// every byte b is token id b (GPT-2's byte-to-unicode alphabet), two merges ("Ġ"+"a" -> 256 = " a",
// "h"+"i" -> 257 = "hi"), and special tokens <s> 258, </s> 259, <pad> 260. So the ids of a text are its UTF-8
// bytes with those two pairs merged inside a pre-tokenised word: expected ids can be written down from first principles.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTokenizer, type Tokenizer } from '../src/data/tokenizer.js';

export const BOS = 258;
export const EOS = 259;
export const PAD = 260;
export const SPACE_A = 256; // " a"
export const HI = 257; // "hi"

/** GPT-2's byte -> printable character table, so byte-level tokens are valid JSON strings. */
export function byteAlphabet(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const table: string[] = new Array<string>(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) table[b] = String.fromCodePoint(printable.includes(b) ? b : 256 + extra++);
  return table;
}

export interface TinyTokenizerOptions {
  /** the post-processor puts <s> in front (like Llama's TemplateProcessing) */
  bosPostProcessor?: boolean;
  /** tokenizer_config.json add_bos_token (absent when undefined) */
  addBosToken?: boolean;
  chatTemplate?: string;
  padToken?: boolean;
  /** false: tokenizer_config.json names no bos_token (like Qwen's) */
  bosToken?: boolean;
}

export function tinyTokenizerFiles(opts: TinyTokenizerOptions = {}): { tokenizer: Record<string, unknown>; config: Record<string, unknown> } {
  const alphabet = byteAlphabet();
  const vocab: Record<string, number> = {};
  alphabet.forEach((ch, b) => (vocab[ch] = b));
  vocab['Ġa'] = SPACE_A;
  vocab['hi'] = HI;
  const special = (id: number, content: string) => ({
    id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
  });
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(BOS, '<s>'), special(EOS, '</s>'), special(PAD, '<pad>')],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: opts.bosPostProcessor
      ? {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
          special_tokens: { '<s>': { id: '<s>', ids: [BOS], tokens: ['<s>'] } },
        }
      : byteLevel,
    decoder: byteLevel,
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: [['Ġ', 'a'], ['h', 'i']],
    },
  };
  const config: Record<string, unknown> = {
    bos_token: '<s>',
    eos_token: { content: '</s>', lstrip: false, normalized: false, rstrip: false, single_word: false, special: true },
    tokenizer_class: 'PreTrainedTokenizerFast',
    clean_up_tokenization_spaces: false, // decode gives back the exact text ("Human: ." stays as written)
  };
  if (opts.padToken) config.pad_token = '<pad>';
  if (opts.bosToken === false) delete config.bos_token;
  if (opts.addBosToken !== undefined) config.add_bos_token = opts.addBosToken;
  if (opts.chatTemplate !== undefined) config.chat_template = opts.chatTemplate;
  return { tokenizer, config };
}

export function tinyTokenizer(opts: TinyTokenizerOptions = {}): Tokenizer {
  return createTokenizer({ ...tinyTokenizerFiles(opts), origin: 'tiny tokenizer' });
}

/** The same tokenizer written as a model folder, for loadTokenizer and the CLI. */
export function tinyTokenizerDir(opts: TinyTokenizerOptions = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'orpo-data-tok-'));
  const files = tinyTokenizerFiles(opts);
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(files.tokenizer));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(files.config));
  return dir;
}

/** UTF-8 bytes: the ids of a text with no mergeable pair in it. */
export const bytes = (text: string): number[] => [...Buffer.from(text, 'utf8')];

/** A simple chat template in the Zephyr style, with BOS emitted by the template itself. */
export const TINY_CHAT_TEMPLATE =
  "{{ bos_token }}{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}{{ eos_token }}\n{% endfor %}" +
  '{% if add_generation_prompt %}<|assistant|>\n{% endif %}';
