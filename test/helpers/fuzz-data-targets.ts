// What the data fuzz cases run, inside the fuzz runner's worker (test/helpers/fuzz.ts): each target reads a file
// the way `orpo data stats` / `orpo train` do and consumes everything it yields.

import { DEFAULT_DATA_OPTIONS, loadPreferencePairs } from '../../src/data/dataset.js';
import { readRows } from '../../src/data/readers.js';
import { loadTokenizer } from '../../src/io/tokenizer-files.js';
import { TINY_CHAT_TEMPLATE, tinyTokenizer } from '../data-tiny-tokenizer.js';

const tokenizer = tinyTokenizer({ chatTemplate: TINY_CHAT_TEMPLATE });

/** Every row of a dataset file, as readRows yields them (invalid rows included): the reader alone. */
export async function readDataset(path: string): Promise<number> {
  let rows = 0;
  for await (const _ of readRows(path)) rows++;
  return rows;
}

/** A dataset file to tokenised pairs, skipping invalid rows as --skip-invalid does: reader, formats and template. */
export async function loadPairs(path: string): Promise<number> {
  const { pairs } = await loadPreferencePairs(path, tokenizer, { ...DEFAULT_DATA_OPTIONS, skipInvalid: true });
  return pairs.length;
}

/** Texts that exercise every pre-tokenizer path: words, digits, punctuation runs, long runs of one character. */
const PROBES = ['Hello world, 123 times!', 'a'.repeat(5000) + '!', ' \n\t '.repeat(200), 'ünïcödé 日本語 🙂', '<s>x</s>'];

/** A model folder's tokenizer loaded, used to encode and decode, and its chat template rendered. */
export async function useTokenizer(input: { dir: string; texts?: string[] }): Promise<number> {
  const tok = await loadTokenizer(input.dir);
  let ids = 0;
  for (const text of [...PROBES, ...(input.texts ?? [])]) {
    const encoded = tok.encode(text, { addSpecialTokens: true });
    tok.decode(encoded);
    ids += encoded.length;
  }
  if (tok.chatTemplate !== null) {
    const chat = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello' },
    ];
    tok.applyChatTemplate(chat);
    tok.applyChatTemplate(chat.slice(0, 2), { addGenerationPrompt: true });
  }
  return ids;
}
