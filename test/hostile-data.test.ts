// Issue 13's hostile and broken data inputs, each reproduced as it was found: corrupt Parquet that hung or left a
// rejection unawaited, gzip that inflates without bound or is cut short, rows longer than a string can be,
// minified JSON read in quadratic time, invalid UTF-8, trailing commas; chat templates and tokenizers that never
// finish. Each must end quickly with one clear error naming the file. Cases that used to hang run in the fuzz
// runner's worker, so a regression fails the test instead of hanging it.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { constants as bufferConstants } from 'node:buffer';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { parquetWriteFile } from 'hyparquet-writer';
import { DataError } from '../src/data/errors.js';
import { DEFAULT_READ_LIMITS, isInvalid, readRows, type ReadItem, type ReadLimits } from '../src/data/readers.js';
import { ChatTemplate, ChatTemplateError, MAX_RANGE } from '../src/data/chat-template.js';
import { createTokenizer } from '../src/data/tokenizer.js';
import { nestedRepetition } from '../src/data/tokenizer-checks.js';
import { TINY_CHAT_TEMPLATE, tinyTokenizerFiles } from './data-tiny-tokenizer.js';
import { describeFailures, runFuzzCases, type FuzzCase } from './helpers/fuzz.js';
import { tempFiles } from './helpers/test-files.js';

const { dir, file } = tempFiles('orpo-hostile-data-');
const targets = new URL('./helpers/fuzz-data-targets.js', import.meta.url);

async function readAll(path: string, limits: Partial<ReadLimits> = {}): Promise<ReadItem[]> {
  const items: ReadItem[] = [];
  for await (const item of readRows(path, { limits })) items.push(item);
  return items;
}

/** Runs each case in a fuzz worker (5 s timeout) and asserts each ended in a clean error naming its file. */
async function assertCleanErrors(paths: string[], expected: RegExp, target = 'readDataset', texts?: string[]): Promise<void> {
  const cases: FuzzCase[] = paths.map((path) => ({ target, input: target === 'readDataset' ? path : { dir: path, texts }, file: path }));
  const report = await runFuzzCases(cases, { module: targets, timeoutMs: 5000 });
  assert.equal(report.failures.length, 0, describeFailures(report));
  for (const r of report.results) {
    assert.equal(r.outcome, 'clean-error', `${r.case.file} was read without an error`);
    assert.match(r.message!, expected);
  }
}

// ---- Parquet ----------------------------------------------------------------------------------------------------

const PARQUET_ROWS = Array.from({ length: 20 }, (_, i) => ({ prompt: `Q${i}:`, chosen: ` yes ${i}`, rejected: ` no ${i}` }));

/** A small Parquet file as hyparquet-writer writes it (snappy, 3 row groups): the fuzzing's starting point. */
function smallParquet(): Uint8Array {
  const path = join(dir, 'base.parquet');
  parquetWriteFile({
    filename: path,
    rowGroupSize: 7,
    columnData: ['prompt', 'chosen', 'rejected'].map((name) => ({
      name, data: PARQUET_ROWS.map((r) => r[name as keyof (typeof PARQUET_ROWS)[number]]), type: 'STRING' as const,
    })),
  });
  return new Uint8Array(readFileSync(path));
}

function flipped(bytes: Uint8Array, flips: [offset: number, mask: number][]): Uint8Array {
  const out = new Uint8Array(bytes);
  for (const [at, mask] of flips) out[at]! ^= mask;
  return out;
}

test('Parquet: one flipped bit that made hyparquet read at offset NaN for ever ends in an error naming the file', async () => {
  const base = smallParquet();
  assert.equal((await readAll(file('base.parquet', base))).length, 20);
  // found by fuzzing: a page header loses a field, the level reader's offset becomes NaN and DataView reads byte 0
  const hangs = [
    file('flip-272.parquet', flipped(base, [[272, 0x04]])),
    file('flip-3.parquet', flipped(base, [[143, 0x01], [533, 0x10], [883, 0x50]])),
  ];
  await assertCleanErrors(hangs, /flip-\d+\.parquet.*(page|chunk|values)/);
});

test('Parquet: a corrupt file leaves no column read in flight to reject after the error', async () => {
  const base = smallParquet();
  // a column's path no longer in the schema (hyparquet threw while its siblings' reads were in flight) and a page
  // that fails to decompress (one of those reads, which then rejected with nobody awaiting it)
  const path = file('orphan-read.parquet', flipped(base, [[234, 0x08], [717, 0x02], [777, 0x04]]));
  await assertCleanErrors([path], /orphan-read\.parquet: not a readable Parquet file \(column "rejecped" is not in the schema\)/);
});

test('Parquet: a string value that is not UTF-8 is refused, not turned into U+FFFD', async () => {
  const path = join(dir, 'latin1.parquet');
  parquetWriteFile({
    filename: path,
    columnData: [
      { name: 'prompt', data: [new Uint8Array([0x63, 0x61, 0x66, 0xe9])] }, // "café" in Latin-1
    ],
    schema: [{ name: 'root', num_children: 1 }, { name: 'prompt', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'REQUIRED' }],
  });
  await assert.rejects(readAll(path), (err: Error) => err instanceof DataError && /latin1\.parquet row 1: a string value is not valid UTF-8 \(in the row group of rows 1\.\.1\)/.test(err.message));
});

test('a gzipped Parquet file is inflated only up to a limit, and the error names the file and the limit', async () => {
  const bomb = file('bomb.parquet.gz', gzipSync(new Uint8Array(8 * 1024 ** 2))); // 8 KB that inflate to 8 MiB
  await assert.rejects(
    readAll(bomb, { maxInflatedBytes: 1024 ** 2 }),
    /bomb\.parquet\.gz: inflates to more than 1 MiB, more than a gzipped Parquet file can be held in memory .* gunzip it/,
  );
  // the default: what memory can hold, never more than 2 GiB (the 6.5 MB file of the issue inflated to 4.5 GB)
  assert.ok(DEFAULT_READ_LIMITS.maxInflatedBytes <= 2 * 1024 ** 3 && DEFAULT_READ_LIMITS.maxInflatedBytes > 64 * 1024 ** 2);
});

test('a truncated .parquet.gz or .jsonl.gz names the file', async () => {
  const parquetGz = gzipSync(smallParquet());
  const cutParquet = file('cut.parquet.gz', parquetGz.subarray(0, parquetGz.length - 20));
  await assert.rejects(readAll(cutParquet), /cut\.parquet\.gz: cannot be inflated \(unexpected end of file\); is the gzip file complete\?/);
  const jsonlGz = gzipSync('{"prompt": "a", "chosen": "b", "rejected": "c"}\n'.repeat(1000));
  const cutJsonl = file('cut.jsonl.gz', jsonlGz.subarray(0, jsonlGz.length - 20));
  await assert.rejects(readAll(cutJsonl), /cut\.jsonl\.gz:\d+: cannot read \(unexpected end of file\); is the gzip file complete\?/);
});

// ---- JSON Lines and JSON ----------------------------------------------------------------------------------------

const ROW = '{"prompt": "p", "chosen": "a", "rejected": "b"}';

test('a JSON Lines line longer than a row may be is an invalid row naming file and line, and reading goes on', async () => {
  // the line reader used to hold any line whole and crash with a stack trace past V8's longest string
  assert.ok(DEFAULT_READ_LIMITS.maxRowLength < bufferConstants.MAX_STRING_LENGTH);
  const path = file('long-line.jsonl', `${ROW}\n{"prompt": "${'x'.repeat(5000)}"}\n${ROW}\n`);
  const items = await readAll(path, { maxRowLength: 4096 });
  assert.equal(items.length, 3);
  assert.ok(!isInvalid(items[0]!) && !isInvalid(items[2]!));
  assert.ok(isInvalid(items[1]!));
  assert.match(items[1].error.message, /long-line\.jsonl:2: the line is longer than 4096 bytes/);
  const array = file('long-row.json', `[${ROW},\n{"prompt": "${'x'.repeat(5000)}"},\n${ROW}]`);
  const rows = await readAll(array, { maxRowLength: 4096 });
  assert.deepEqual(rows.map((r) => isInvalid(r)), [false, true, false]);
  assert.match((rows[1] as { error: Error }).error.message, /long-row\.json:2: the row is longer than 4096 characters/);
});

test('a minified single-line JSON array is read in linear time, as json.dump writes it', async () => {
  // the first line was searched again after every chunk: 10 MB took 16 s, 20 MB 73 s; now about 1 s per 40 MB
  const row = JSON.stringify({ prompt: `Q: ${'lorem ipsum '.repeat(200)}`, chosen: ' yes', rejected: ' no' });
  const path = file('minified.json', `[${Array.from({ length: 8000 }, () => row).join(',')}]`); // 20 MB, no newline
  const started = performance.now();
  const items = await readAll(path);
  const seconds = (performance.now() - started) / 1000;
  assert.equal(items.length, 8000);
  // quadratic reading took 73 s for this; linear takes under 2 s even on a busy machine
  assert.ok(seconds < 15, `${seconds.toFixed(1)} s for 20 MB`);
});

test('invalid UTF-8 is refused naming the file, the line and the byte offset, as Python does', async () => {
  const line2 = Buffer.concat([Buffer.from(`${ROW}\n{"prompt": "caf`), Buffer.from([0xe9]), Buffer.from('", "chosen": "a", "rejected": "b"}\n')]);
  const jsonl = await readAll(file('latin1.jsonl', line2));
  assert.equal(jsonl.length, 2);
  assert.ok(isInvalid(jsonl[1]!));
  assert.equal(jsonl[1].error.message, `${join(dir, 'latin1.jsonl')}:2: not valid UTF-8 (byte 0xe9 at byte offset ${ROW.length + 16}); save the file as UTF-8`);
  const array = Buffer.concat([Buffer.from(`[${ROW},\n${ROW},\n{"prompt": "`), Buffer.from([0xc0, 0xaf]), Buffer.from('"}]')]);
  await assert.rejects(readAll(file('overlong.json', array)), /overlong\.json:3: not valid UTF-8 \(byte 0xc0 at byte offset \d+\)/);
  const cut = Buffer.concat([Buffer.from(`[${ROW}, "`), Buffer.from('🙂').subarray(0, 2)]);
  await assert.rejects(readAll(file('cut-char.json', cut)), /cut-char\.json:1: not valid UTF-8 .* \(the file ends inside a character\)/);
  // a character split by a read chunk's end (64 KiB) is still one character
  const pad = 'x'.repeat(65536 - 14);
  const straddle = file('straddle.json', `[{"prompt": "${pad}🙂", "chosen": "a", "rejected": "b"}]`);
  const [row] = await readAll(straddle);
  assert.ok(row && !isInvalid(row) && row.values.prompt === `${pad}🙂`);
});

test('a JSON array with a trailing comma, a missing comma or text after it is refused', async () => {
  const cases: [string, RegExp][] = [
    [`[${ROW},]`, /:1: the JSON array has a comma after its last row \(JSON allows no trailing comma\)/],
    [`[${ROW},\n]`, /:2: the JSON array has a comma after its last row/],
    [`[,${ROW}]`, /the JSON array has a comma where a row should be/],
    [`[${ROW} ${ROW}]`, /the JSON array lacks a comma between rows 0 and 1/],
    [`[${ROW}] x`, /the JSON array is followed by "x" after its closing \]/],
    [`[${ROW},${ROW}`, /the JSON array is not closed/],
  ];
  for (const [i, [text, expected]] of cases.entries()) {
    const path = file(`broken-array-${i}.json`, text);
    await assert.rejects(readAll(path), (err: Error) => err.message.includes(path) && expected.test(err.message), text);
  }
  assert.equal((await readAll(file('fine.json', `[ ${ROW} ,\n ${ROW} ]\n`))).length, 2);
  assert.equal((await readAll(file('empty.json', '[]'))).length, 0);
});

// ---- Chat templates and tokenizers ------------------------------------------------------------------------------

/** A model folder holding the tiny tokenizer, changed by `edit` (tokenizer.json and tokenizer_config.json). */
function modelDir(name: string, edit: (files: { tokenizer: Record<string, unknown>; config: Record<string, unknown> }) => void): string {
  const files = tinyTokenizerFiles({ chatTemplate: TINY_CHAT_TEMPLATE });
  edit(files);
  const path = join(dir, name);
  mkdirSync(path, { recursive: true });
  writeFileSync(join(path, 'tokenizer.json'), JSON.stringify(files.tokenizer));
  writeFileSync(join(path, 'tokenizer_config.json'), JSON.stringify(files.config));
  return path;
}

const CHAT = [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }];

test('a chat template asking range() for a billion items is refused at once, as transformers\' sandbox refuses it', () => {
  // @huggingface/jinja built the array: a gigabyte in a second, then V8 aborted the process
  const template = new ChatTemplate('{% for i in range(1000000000) %}x{% endfor %}', {}, '/m/chat_template.jinja');
  assert.throws(() => template.render(CHAT), (err: Error) =>
    err instanceof ChatTemplateError && /^\/m\/chat_template\.jinja: the chat template asked range\(\) for 1,000,000,000 items; at most 100,000/.test(err.message));
  assert.equal(new ChatTemplate(`{{ range(${MAX_RANGE}) | length }}`, {}).render(CHAT), String(MAX_RANGE));
});

test('nested loops, exponential macros and runaway strings in a chat template end within seconds naming the file', async () => {
  const templates = {
    nested: '{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}',
    nestedMessages: '{% for a in messages %}{% for i in range(99999) %}{% for j in range(99999) %}.{% endfor %}{% endfor %}{% endfor %}',
    exponential: '{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}',
    doubling: '{% set s = "x" %}{% for i in range(64) %}{% set s = s + s %}{% endfor %}{{ s }}',
  };
  const dirs = Object.entries(templates).map(([name, template]) => modelDir(`template-${name}`, (f) => (f.config.chat_template = template)));
  await assertCleanErrors(dirs, /template-\w+\/tokenizer_config\.json: the chat template (did not finish within 300,000 steps|made a string of)/, 'useTokenizer');
  // and a real template stays well inside the budget
  assert.match(new ChatTemplate(TINY_CHAT_TEMPLATE, { bos_token: '<s>', eos_token: '</s>' }).render(CHAT), /^<s><\|user\|>\nhi<\/s>/);
});

test('a broken chat template names its file and says it is the chat template', () => {
  const files = tinyTokenizerFiles({ chatTemplate: '{% for %}' });
  assert.throws(() => createTokenizer({ ...files, origin: '/models/m' }), /^ChatTemplateError: \/models\/m\/tokenizer_config\.json: the chat template cannot be parsed/);
  const undefinedCall = tinyTokenizerFiles({ chatTemplate: '{{ nothing.here() }}' });
  const tok = createTokenizer({ ...undefinedCall, origin: '/models/m' });
  assert.throws(() => tok.applyChatTemplate(CHAT), /\/models\/m\/tokenizer_config\.json: the chat template failed \(/);
});

test('a tokenizer.json split pattern that backtracks catastrophically is refused when the tokenizer loads', async () => {
  // (a+)+$ on "aaaa...a!" tries 2^n ways to split the a's before failing: an 80-character row never finished
  const split = (regex: string) => (f: { tokenizer: Record<string, unknown> }) => {
    f.tokenizer.pre_tokenizer = {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
      ],
    };
  };
  const dirs = [modelDir('split-nested', split('(a+)+$')), modelDir('split-words', split('(\\w+\\s?)+$'))];
  await assertCleanErrors(dirs, /split-\w+\/tokenizer\.json: the pre_tokenizer.pretokenizers\[0\] \(Split\) pattern .* repeats a group that itself repeats/,
    'useTokenizer', ['a'.repeat(80) + '!']);
  // the patterns real tokenizers use pass: GPT-2, cl100k, o200k, Llama 3 / Qwen
  for (const real of [
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}",
  ]) assert.equal(nestedRepetition(real), null, real);
  assert.equal(nestedRepetition('[(a+)+]|\\(a+\\)+|(ab)+|(a+){1}'), null);
});

test('an added token with id 1e9 is refused when the tokenizer loads instead of walking a billion-slot array', async () => {
  const huge = modelDir('added-id', (f) => (f.tokenizer.added_tokens as { id: number }[])[0]!.id = 1e9);
  const negative = modelDir('vocab-id', (f) => ((f.tokenizer.model as { vocab: Record<string, number> }).vocab['hi'] = -3));
  await assertCleanErrors([huge, negative], /(added|vocab)-id\/tokenizer\.json: the (added token "<s>" has id 1000000000|vocabulary's token "hi" has id -3); ids number the 261 tokens from 0/, 'useTokenizer');
});

test('bos_token: 5 in tokenizer_config.json is refused naming the file and the field, not ignored', () => {
  const files = tinyTokenizerFiles();
  files.config.bos_token = 5;
  assert.throws(() => createTokenizer({ ...files, origin: '/models/m' }),
    /^DataError: \/models\/m\/tokenizer_config\.json: bos_token is 5; it must be the token's text \("<s>"\) or \{"content": "<s>", \.\.\.\}/);
  files.config.bos_token = null; // null means none, as transformers reads it
  assert.equal(createTokenizer({ ...files, origin: '/models/m' }).bosTokenId, null);
});

test('errors quote what the library failed on cut short, not whole (found by the 10-minute fuzz run)', () => {
  const files = tinyTokenizerFiles();
  files.tokenizer.pre_tokenizer = { type: 'x'.repeat(100_000) };
  assert.throws(() => createTokenizer({ ...files, origin: '/models/m' }), (err: Error) =>
    /^\/models\/m: tokenizer\.json cannot be loaded \(Unknown PreTokenizer type: x+\.\.\.\)/.test(err.message) && err.message.length < 400);
});
