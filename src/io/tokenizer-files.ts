// A model folder's tokenizer files from disk: tokenizer.json (required), tokenizer_config.json,
// special_tokens_map.json, chat_template.jinja and config.json's model_type. src/data/tokenizer.ts builds the
// tokenizer from their contents and reads no files, so a page can hand it the files a user picked.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DataError, briefly } from '../data/errors.js';
import { createTokenizer, type Tokenizer, type TokenizerFiles } from '../data/tokenizer.js';

async function readJson(path: string, required: boolean): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !required) return undefined;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new DataError(`${path} not found: a model folder needs tokenizer.json (save the tokenizer with save_pretrained)`);
    }
    throw err;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new DataError(`${path} is not valid JSON: ${briefly(err)}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new DataError(`${path} must hold a JSON object, not ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}`);
  }
  return value as Record<string, unknown>;
}

async function readOptionalText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * The tokenizer files of a model folder, as createTokenizer takes them; `modelType` where the caller knows it (e.g.
 * an adapter folder carrying its base's tokenizer but no config.json), else config.json's.
 */
export async function readTokenizerFiles(modelDir: string, modelType?: string): Promise<TokenizerFiles> {
  const tokenizer = (await readJson(join(modelDir, 'tokenizer.json'), true))!;
  const config = (await readJson(join(modelDir, 'tokenizer_config.json'), false)) ?? {};
  const specialTokensMap = await readJson(join(modelDir, 'special_tokens_map.json'), false);
  const chatTemplateFile = await readOptionalText(join(modelDir, 'chat_template.jinja'));
  const modelConfig = modelType === undefined ? await readJson(join(modelDir, 'config.json'), false) : undefined;
  const type = modelType ?? (typeof modelConfig?.model_type === 'string' ? modelConfig.model_type : undefined);
  return { tokenizer, config, specialTokensMap, chatTemplateFile, origin: modelDir, modelType: type };
}

/** Reads tokenizer.json + tokenizer_config.json (+ special_tokens_map.json, chat_template.jinja) from a model folder. */
export async function loadTokenizer(modelDir: string): Promise<Tokenizer> {
  return createTokenizer(await readTokenizerFiles(modelDir));
}
