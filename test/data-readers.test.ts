// Every file shape a preference dataset comes in, written by the test: JSON Lines (plain and gzipped), JSON
// (array, object holding arrays, JSON Lines under .json), Parquet (snappy, gzip, several row groups, nested
// message lists, gzipped whole), a Hugging Face style folder with splits; and broken files, whose errors must say
// which file and line, and which --skip-invalid counts instead.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { parquetWriteFile } from 'hyparquet-writer';
import { DEFAULT_DATA_OPTIONS, emptyStats, loadPreferencePairs, streamPreferencePairs, type DataOptions } from '../src/data/dataset.js';
import { readRows, resolveDataFiles } from '../src/data/readers.js';
import { BOS, EOS, SPACE_A, TINY_CHAT_TEMPLATE, bytes, tinyTokenizer } from './data-tiny-tokenizer.js';
import { tempFiles, messageListSchema } from './helpers/test-files.js';

const { dir, file } = tempFiles('orpo-data-readers-');
const tok = tinyTokenizer({ chatTemplate: TINY_CHAT_TEMPLATE });
const opts = (o: Partial<DataOptions> = {}): DataOptions => ({ ...DEFAULT_DATA_OPTIONS, ...o });

const ROWS = [
  { prompt: 'Q1:', chosen: ' a', rejected: ' no' },
  { prompt: 'Q2:', chosen: ' yes', rejected: ' nope' },
  { prompt: 'Q3:', chosen: ' x', rejected: ' y' },
  { prompt: 'Q4:', chosen: ' same', rejected: ' same' },
  { prompt: 'Q5:', chosen: ' last', rejected: ' first' },
];
const jsonl = ROWS.map((r) => JSON.stringify(r)).join('\n') + '\n';
// written down from first principles: BOS in front (TRL adds the tokenizer's bos_token), bytes, " a" merged, EOS
// appended; row 4 is dropped (chosen equals rejected)
const EXPECTED_FIRST = { prompt: [BOS, ...bytes('Q1:')], chosen: [SPACE_A, EOS], rejected: [...bytes(' no'), EOS] };

async function pairsOf(path: string, o: Partial<DataOptions> = {}) {
  return loadPreferencePairs(path, tok, opts(o));
}

test('JSON Lines, gzipped JSON Lines, JSON array, JSON object of splits and JSON Lines named .json agree', async () => {
  const variants = [
    file('rows.jsonl', jsonl),
    file('rows.jsonl.gz', gzipSync(jsonl)),
    file('rows-array.json', JSON.stringify(ROWS)),
    file('rows-gz-array.json.gz', gzipSync(JSON.stringify(ROWS))),
    file('rows-lines.json', jsonl), // datasets' to_json() writes JSON Lines
    file('rows-bom.jsonl', `\ufeff${jsonl}`), // byte-order marks from Windows editors
    file('rows-bom-array.json', `\ufeff${JSON.stringify(ROWS)}`),
    file('rows-bom-lines.json', `\ufeff${jsonl}`),
  ];
  for (const path of variants) {
    const { pairs, stats } = await pairsOf(path);
    assert.equal(pairs.length, 4, path);
    assert.deepEqual(pairs[0], EXPECTED_FIRST, path);
    assert.deepEqual([stats.rowsRead, stats.rowsUsed, stats.dropped.chosen_equals_rejected], [5, 4, 1], path);
  }
  const splits = file('splits.json', JSON.stringify({ train: ROWS, test: ROWS.slice(0, 2), version: 1 }));
  assert.equal((await pairsOf(splits, { split: 'test' })).pairs.length, 2);
  await assert.rejects(pairsOf(splits), /holds several arrays \(train, test\); choose one with --dataset-split/);
});


function writeStringParquet(path: string, rows: readonly Record<string, string>[], extra: object = {}): string {
  mkdirSync(join(path, '..'), { recursive: true });
  parquetWriteFile({
    filename: path,
    columnData: ['prompt', 'chosen', 'rejected'].map((name) => ({ name, data: rows.map((r) => r[name]!), type: 'STRING' as const })),
    ...extra,
  });
  return path;
}

/**
 * A valid zstd frame holding the input uncompressed (one raw block per 128 KiB): enough to write ZSTD Parquet pages
 * on Node 20, which has no zstd encoder, and so test that reading decodes them.
 */
function zstdStored(input: Uint8Array): Uint8Array {
  const blocks: Buffer[] = [];
  const MAX_BLOCK = 128 * 1024;
  for (let at = 0; at === 0 || at < input.length; at += MAX_BLOCK) {
    const block = input.subarray(at, at + MAX_BLOCK);
    const last = at + MAX_BLOCK >= input.length ? 1 : 0;
    const header = last | (0 << 1) | (block.length << 3); // Raw_Block
    blocks.push(Buffer.from([header & 0xff, (header >> 8) & 0xff, (header >> 16) & 0xff]), Buffer.from(block));
  }
  const frame = Buffer.alloc(9);
  frame.writeUInt32LE(0xfd2fb528, 0); // magic
  frame[4] = 0xa0; // 4-byte frame content size, single segment, no checksum, no dictionary
  frame.writeUInt32LE(input.length, 5);
  return Buffer.concat([frame, ...blocks]);
}

test('Parquet: snappy, gzip, zstd, several row groups, gzipped whole', async () => {
  const snappy = writeStringParquet(join(dir, 'rows.parquet'), ROWS, { rowGroupSize: 2 });
  const gzip = writeStringParquet(join(dir, 'rows-gzip.parquet'), ROWS, { codec: 'GZIP', compressors: { GZIP: (b: Uint8Array) => gzipSync(b) } });
  const zstd = writeStringParquet(join(dir, 'rows-zstd.parquet'), ROWS, { codec: 'ZSTD', compressors: { ZSTD: zstdStored } });
  const whole = file('rows.parquet.gz', gzipSync(readFileSync(snappy)));
  for (const path of [snappy, gzip, zstd, whole]) {
    const { pairs, stats } = await pairsOf(path);
    assert.deepEqual(pairs[0], EXPECTED_FIRST, path);
    assert.equal(stats.rowsUsed, 4, path);
  }
  const sources = [];
  for await (const item of readRows(snappy)) sources.push(item.source);
  assert.deepEqual(sources.map((s) => s.row), [0, 1, 2, 3, 4], 'row numbers run on across row groups');
});

test('Parquet with nested message lists (Hugging Face conversational datasets) goes through the chat template', async () => {
  const path = join(dir, 'chat.parquet');
  const turn = (role: string, content: string) => ({ role, content });
  parquetWriteFile({
    filename: path,
    schema: [{ name: 'root', num_children: 3 }, ...messageListSchema('prompt'), ...messageListSchema('chosen'), ...messageListSchema('rejected')],
    columnData: [
      { name: 'prompt', data: [[turn('user', 'hi')]] },
      { name: 'chosen', data: [[turn('assistant', 'a')]] },
      { name: 'rejected', data: [[turn('assistant', 'b')]] },
    ],
  });
  const { pairs, stats } = await pairsOf(path);
  assert.equal(stats.conversational, 1);
  // "<s><|user|>\nhi</s>\n<|assistant|>\n" | "a</s>\n" + EOS ; the tiny tokenizer adds no BOS of its own
  assert.deepEqual(pairs[0], {
    prompt: [258, ...bytes('<|user|>\n'), 257, EOS, 10, ...bytes('<|assistant|>\n')],
    chosen: [97, EOS, 10, EOS],
    rejected: [98, EOS, 10, EOS],
  });
});

test('a dataset folder: train shards by default, --split picks another, metadata and hidden files ignored', async () => {
  const root = join(dir, 'snapshot');
  writeStringParquet(join(root, 'data', 'train-00000-of-00002.parquet'), ROWS.slice(0, 2));
  writeStringParquet(join(root, 'data', 'train-00001-of-00002.parquet'), ROWS.slice(2));
  writeStringParquet(join(root, 'data', 'test-00000-of-00001.parquet'), ROWS.slice(0, 1));
  file('snapshot/README.md', '# card');
  file('snapshot/.cache/huggingface/x.json', '{}');
  file('snapshot/dataset_info.json', '{}');
  assert.deepEqual((await resolveDataFiles(root)).map((f) => f.slice(root.length)),
    ['/data/train-00000-of-00002.parquet', '/data/train-00001-of-00002.parquet']);
  const train = await pairsOf(root);
  assert.equal(train.stats.rowsRead, 5);
  assert.deepEqual(train.pairs[0], EXPECTED_FIRST);
  assert.equal((await pairsOf(root, { split: 'test' })).stats.rowsRead, 1);
  await assert.rejects(pairsOf(root, { split: 'validation' }), /no files for split "validation"; choose one of test, train with --dataset-split \(files: data\/test-00000/);
  // UltraFeedback-style names: train_prefs is its own split, not part of train; no train means a choice is needed
  const prefs = join(dir, 'prefs');
  writeStringParquet(join(prefs, 'data', 'train_prefs-00000-of-00001.parquet'), ROWS.slice(0, 2));
  writeStringParquet(join(prefs, 'data', 'train_sft-00000-of-00001.parquet'), ROWS);
  writeStringParquet(join(prefs, 'data', 'test_prefs-00000-of-00001.parquet'), ROWS.slice(0, 1));
  assert.equal((await pairsOf(prefs, { split: 'train_prefs' })).stats.rowsRead, 2);
  await assert.rejects(pairsOf(prefs), /choose one of test_prefs, train_prefs, train_sft with --dataset-split/);
  file('plain/part-0.jsonl', jsonl);
  file('plain/part-1.jsonl', jsonl);
  assert.equal((await pairsOf(join(dir, 'plain'))).stats.rowsRead, 10, 'files without split names are one split');
  const nested = join(dir, 'by-dir');
  file('by-dir/train/part-0.jsonl', jsonl);
  file('by-dir/test/part-0.jsonl', jsonl.split('\n')[0]!);
  assert.equal((await pairsOf(nested, { split: 'test' })).stats.rowsRead, 1);
});

test('a malformed line names the file and line; --skip-invalid counts it and keeps the message', async () => {
  const lines = [JSON.stringify(ROWS[0]), JSON.stringify(ROWS[1]), '{"prompt": "Q", "chosen": " a",', '[1, 2]', JSON.stringify(ROWS[2])];
  for (const path of [file('broken.jsonl', lines.join('\n')), file('broken.jsonl.gz', gzipSync(lines.join('\n')))]) {
    await assert.rejects(pairsOf(path), (err: Error) => {
      assert.equal(err.name, 'DataError');
      assert.match(err.message, new RegExp(`^${path.replace(/[.]/g, '\\.')}:3: not valid JSON`));
      return true;
    });
    const { pairs, stats } = await pairsOf(path, { skipInvalid: true });
    assert.equal(pairs.length, 3);
    assert.deepEqual([stats.rowsRead, stats.rowsUsed, stats.dropped.invalid], [5, 3, 2]);
    assert.match(stats.invalidExamples[0]!, /:3: not valid JSON/);
    assert.match(stats.invalidExamples[1]!, /:4: each row must be a JSON object/);
  }
});

test('a missing field stops the run naming file, line, field and the fields present', async () => {
  const path = file('fields.jsonl', `${JSON.stringify(ROWS[0])}\n{"question": "q", "response_a": "x", "rejected": "y"}\n`);
  await assert.rejects(pairsOf(path), /fields\.jsonl:2: missing field "chosen"; the row has "question", "response_a", "rejected"/);
  const mapped = await pairsOf(path, { columns: { chosen: 'response_a' }, skipInvalid: true });
  assert.equal(mapped.stats.dropped.invalid, 1, 'row 1 lacks response_a and is counted, not lost silently');
});

test('broken JSON, Parquet and gzip files name the file (and the line when there is one)', async () => {
  const badJson = file('bad.json', `[\n${JSON.stringify(ROWS[0])},\n{"prompt": "a",\n"chosen": },\n${JSON.stringify(ROWS[1])}\n]`);
  await assert.rejects(pairsOf(badJson), /bad\.json:3: not valid JSON/); // the broken row starts on line 3
  const skipped = await pairsOf(badJson, { skipInvalid: true });
  assert.deepEqual([skipped.stats.rowsRead, skipped.stats.rowsUsed, skipped.stats.dropped.invalid], [3, 2, 1]);
  assert.deepEqual(skipped.pairs[0], EXPECTED_FIRST);
  await assert.rejects(pairsOf(file('bad.parquet', 'this is not parquet')), /bad\.parquet: not a readable Parquet file/);
  const gz = gzipSync(jsonl);
  await assert.rejects(pairsOf(file('cut.jsonl.gz', gz.subarray(0, gz.length - 12))), /cut\.jsonl\.gz:\d+: cannot read \(unexpected end of file\)/);
  await assert.rejects(pairsOf(file('rows.txt', jsonl)), /unknown dataset format; use \.jsonl, \.json or \.parquet/);
  await assert.rejects(pairsOf(join(dir, 'absent.jsonl')), /dataset .*absent\.jsonl not found/);
  const empty = file('unusable.jsonl', `${JSON.stringify({ prompt: 'p', chosen: '', rejected: 'x' })}\n`);
  await assert.rejects(pairsOf(empty), /no usable rows \(1 read, 0 used, dropped 1 \(empty_response 1\)/);
});

test('rows stream one at a time: stopping early never reads the broken tail of a file', async () => {
  const path = file('tail.jsonl', `${jsonl}this line is not JSON\n`);
  const stats = emptyStats();
  const seen = [];
  for await (const row of streamPreferencePairs(path, tok, opts(), stats)) {
    seen.push(row);
    if (seen.length === 2) break;
  }
  assert.equal(stats.rowsRead, 2);
  assert.deepEqual(seen[1]!.source, { file: path, line: 2 });
  assert.deepEqual(seen[1]!.text, { prompt: 'Q2:', chosen: ' yes', rejected: ' nope' });
});

test('JSON arrays stream row by row across read chunks, whatever the strings hold', async () => {
  const tricky = Array.from({ length: 3000 }, (_, i) => ({
    prompt: `Q${i}: [a, {b}] "quoted" \\ back\\slash, ünïcödé 🙂 ${'x'.repeat(i % 50)}`,
    chosen: ` ok ${i}]`,
    rejected: ` no, {${i}}`,
  }));
  const path = file('tricky.json', JSON.stringify(tricky, null, 1)); // ~500 KB: many 64 KiB read chunks
  const rows = [];
  for await (const item of readRows(path)) {
    assert.ok(!('error' in item));
    rows.push(item.values);
  }
  assert.deepEqual(rows, tricky);
  const gz = file('tricky.json.gz', gzipSync(JSON.stringify(tricky)));
  let n = 0;
  for await (const item of readRows(gz)) if (!('error' in item)) n++;
  assert.equal(n, 3000);
  // streamed: stopping early never reaches the broken tail
  const tail = file('tail.json', `[${JSON.stringify(ROWS[0])},\n${JSON.stringify(ROWS[1])},\n{broken},\n`);
  const first = [];
  for await (const item of readRows(tail)) {
    first.push(item);
    if (first.length === 2) break;
  }
  assert.equal(first.length, 2);
  await assert.rejects(pairsOf(tail), /tail\.json:3: not valid JSON/);
  await assert.rejects(pairsOf(tail, { skipInvalid: true }), /tail\.json:4: the JSON array is not closed/);
});
