// safetensors reading/writing and Hugging Face model folders: the shared golden fixtures (F32 single file vs
// BF16 shards of the same weights), write -> read round trips, hand-made corrupt files, a sparse file with a
// tensor past 2 GiB, and atomic replacement.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { listModelTensors, parseShardSize, writeModelTensors } from '../src/io/model-files.js';
import {
  readSafetensorsHeader, readTensorF32, writeSafetensors, type NamedTensor, type TensorInfo,
} from '../src/io/safetensors.js';
import { bf16ToF32 } from '../src/tensor/dtype.js';
import { Rng } from '../src/tensor/rng.js';

// ------------------------------------------------------------------------------------------------ helpers

function findSharedDir(): string | null {
  const candidates = [fileURLToPath(new URL('../../../shared', import.meta.url))];
  for (let dir = process.cwd(); ; dir = dirname(dir)) {
    candidates.push(join(dir, 'shared'), join(dir, '..', 'shared'));
    if (dirname(dir) === dir) break;
  }
  return candidates.find((dir) => existsSync(join(dir, 'fixtures'))) ?? null;
}

const shared = findSharedDir();
const noShared = shared === null ? 'the shared fixtures (../shared/fixtures) are not present' : false;

let tmp = '';
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'orpo-safetensors-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return ua.every((v, i) => v === ub[i]);
}

function assertSameBits(actual: Float32Array, expected: Float32Array, what: string): void {
  assert.ok(sameBits(actual, expected), `${what}: values differ`);
}

function randomTensor(name: string, shape: number[], seed: number): NamedTensor {
  const rng = new Rng(seed);
  const data = new Float32Array(shape.reduce((n, d) => n * d, 1));
  for (let i = 0; i < data.length; i++) data[i] = (rng.uniform() - 0.5) * 4;
  return { name, shape, data };
}

/** Random values that bf16 represents exactly (random bf16 bit patterns, NaN excluded). */
function bf16ExactTensor(name: string, shape: number[], seed: number): NamedTensor {
  const rng = new Rng(seed);
  const bits = new Uint16Array(shape.reduce((n, d) => n * d, 1));
  for (let i = 0; i < bits.length; i++) {
    do bits[i] = rng.int(65536);
    while ((bits[i]! & 0x7f80) === 0x7f80 && (bits[i]! & 0x7f) !== 0);
  }
  return { name, shape, data: bf16ToF32(bits) };
}

async function readAll(tensors: Map<string, TensorInfo>): Promise<Map<string, Float32Array>> {
  const result = new Map<string, Float32Array>();
  for (const [name, info] of tensors) result.set(name, await readTensorF32(info));
  return result;
}

async function assertFolderHolds(dir: string, expected: NamedTensor[]): Promise<void> {
  const tensors = await listModelTensors(dir);
  assert.deepEqual([...tensors.keys()].sort(), expected.map((t) => t.name).sort());
  for (const t of expected) {
    const info = tensors.get(t.name)!;
    assert.deepEqual(info.shape, t.shape, `${t.name} shape`);
    assertSameBits(await readTensorF32(info), t.data, t.name);
  }
}

/** A file with the given header text (padded to 8 bytes unless `rawLength` overrides the length field). */
async function craftFile(name: string, header: string | Uint8Array, data: Uint8Array, rawLength?: bigint): Promise<string> {
  const json = typeof header === 'string' ? new TextEncoder().encode(header) : header;
  const padded = Math.ceil(json.length / 8) * 8;
  const bytes = new Uint8Array(8 + padded + data.length).fill(0x20);
  new DataView(bytes.buffer).setBigUint64(0, rawLength ?? BigInt(padded), true);
  bytes.set(json, 8);
  bytes.set(data, 8 + padded);
  const file = join(tmp, name);
  await writeFile(file, bytes);
  return file;
}

async function assertRejects(file: string, ...mentions: (string | RegExp)[]): Promise<void> {
  await assert.rejects(async () => {
    const header = await readSafetensorsHeader(file);
    for (const info of header.tensors.values()) await readTensorF32(info);
  }, (error: unknown) => {
    assert.ok(error instanceof Error, 'throws an Error');
    assert.ok(error.message.includes(file), `message names the file: ${error.message}`);
    for (const m of mentions) {
      if (typeof m === 'string') assert.ok(error.message.includes(m), `message mentions '${m}': ${error.message}`);
      else assert.match(error.message, m);
    }
    return true;
  });
}

function f32Bytes(...values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

// ------------------------------------------------------------------------------------------------ fixtures

for (const family of ['llama', 'gpt2']) {
  test(`${family} fixture: every BF16 shard tensor equals the F32 file's tensor bit for bit`, { skip: noShared }, async () => {
    const base = join(shared!, 'fixtures', family);
    const f32 = await listModelTensors(join(base, 'model'));
    const bf16 = await listModelTensors(join(base, 'model-bf16-sharded'));
    assert.deepEqual([...bf16.keys()].sort(), [...f32.keys()].sort());
    assert.ok(f32.size > 10, `${family} has its parameters`);
    const shards = new Set([...bf16.values()].map((t) => basename(t.file)));
    assert.deepEqual([...shards].sort(), ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
    for (const [name, info] of f32) {
      const other = bf16.get(name)!;
      assert.equal(info.dtype, 'F32');
      assert.equal(other.dtype, 'BF16');
      assert.deepEqual(other.shape, info.shape, name);
      assertSameBits(await readTensorF32(other), await readTensorF32(info), name);
    }
    const index = JSON.parse(await readFile(join(base, 'model-bf16-sharded', 'model.safetensors.index.json'), 'utf8'));
    const total = [...bf16.values()].reduce((n, t) => n + t.byteLength, 0);
    assert.equal(index.metadata.total_size, total);
  });
}

test('fixture: re-writing each fixture file reproduces it byte for byte', { skip: noShared }, async () => {
  for (const family of ['llama', 'gpt2']) {
    const base = join(shared!, 'fixtures', family);
    const files = [join(base, 'model', 'model.safetensors'), join(base, 'expected.safetensors'),
      join(base, 'model-bf16-sharded', 'model-00001-of-00002.safetensors'),
      join(base, 'model-bf16-sharded', 'model-00002-of-00002.safetensors')];
    for (const file of files) {
      const { tensors, metadata } = await readSafetensorsHeader(file);
      const values = await readAll(tensors);
      const dtype = tensors.values().next().value!.dtype === 'BF16' ? 'BF16' : 'F32';
      const copy = join(tmp, 'rewritten.safetensors');
      const { format, ...extra } = metadata;
      assert.ok(format === undefined || format === 'pt');
      await writeSafetensors(copy, [...values].map(([name, data]) => ({ name, shape: tensors.get(name)!.shape, data })),
        { dtype, metadata: extra });
      const [original, rewritten] = [await readFile(file), await readFile(copy)];
      if (format === undefined) {
        // expected.safetensors has no __metadata__: compare the data sections and the tensor entries only
        const dataOf = (b: Buffer): Buffer => b.subarray(8 + Number(b.readBigUInt64LE(0)));
        assert.ok(dataOf(original).equals(dataOf(rewritten)), `${file}: data section differs`);
        const { tensors: again } = await readSafetensorsHeader(copy);
        assert.deepEqual([...again.values()].map((t) => [t.name, t.shape, t.byteLength]),
          [...tensors.values()].map((t) => [t.name, t.shape, t.byteLength]));
      } else {
        assert.ok(original.equals(rewritten), `${file}: the rewritten file differs`);
      }
    }
  }
});

test('fixture: re-saving the F32 model as BF16 shards reproduces its values', { skip: noShared }, async () => {
  const source = await listModelTensors(join(shared!, 'fixtures', 'llama', 'model'));
  const tensors = [...(await readAll(source))].map(([name, data]) => ({ name, shape: source.get(name)!.shape, data }));
  const dir = join(tmp, 'llama-resaved');
  await writeModelTensors(dir, tensors, { dtype: 'BF16', maxShardBytes: 150_000 });
  const files = (await readdir(dir)).sort();
  assert.ok(files.includes('model.safetensors.index.json'));
  assert.ok(files.length > 2, `several shards: ${files.join(', ')}`);
  await assertFolderHolds(dir, tensors);
});

// ------------------------------------------------------------------------------------------------ round trips

test('F32 write -> read is bit-identical (incl. -0, Inf, NaN, subnormals, empty and scalar tensors)', async () => {
  const special = { name: 'special', shape: [2, 3], data: new Float32Array([-0, Infinity, -Infinity, NaN, 1e-45, 3.4028234663852886e38]) };
  const tensors = [
    randomTensor('b.weight', [7, 5], 1), randomTensor('a.weight', [13], 2), special,
    { name: 'empty', shape: [0, 4], data: new Float32Array(0) },
    { name: 'scalar', shape: [], data: new Float32Array([42]) },
  ];
  const file = join(tmp, 'roundtrip.safetensors');
  await writeSafetensors(file, tensors);
  const header = await readSafetensorsHeader(file);
  assert.equal(header.tensors.size, tensors.length);
  for (const t of tensors) {
    const info = header.tensors.get(t.name)!;
    assert.equal(info.dtype, 'F32');
    assert.deepEqual(info.shape, t.shape);
    assertSameBits(await readTensorF32(info), t.data, t.name);
  }
});

test('BF16 and F16 writes of exactly representable values read back identical; others round to nearest', async () => {
  const exact = [bf16ExactTensor('x', [64, 9], 3), bf16ExactTensor('y', [33], 4)];
  const bf16File = join(tmp, 'exact-bf16.safetensors');
  await writeSafetensors(bf16File, exact, { dtype: 'BF16' });
  const header = await readSafetensorsHeader(bf16File);
  for (const t of exact) {
    assert.equal(header.tensors.get(t.name)!.dtype, 'BF16');
    assert.equal(header.tensors.get(t.name)!.byteLength, t.data.length * 2);
    assertSameBits(await readTensorF32(header.tensors.get(t.name)!), t.data, t.name);
  }
  const halfExact = { name: 'h', shape: [6], data: new Float32Array([1, -2.5, 65504, 2 ** -24, 0.333251953125, -0]) };
  const f16File = join(tmp, 'exact-f16.safetensors');
  await writeSafetensors(f16File, [halfExact, { name: 'r', shape: [2], data: new Float32Array([1 + 2 ** -11, 1e6]) }], { dtype: 'F16' });
  const f16Header = await readSafetensorsHeader(f16File);
  assertSameBits(await readTensorF32(f16Header.tensors.get('h')!), halfExact.data, 'h');
  assert.deepEqual([...(await readTensorF32(f16Header.tensors.get('r')!))], [1, Infinity]);
});

test('written header: 8-byte aligned, __metadata__.format "pt" (plus extra metadata), tensors in name order, contiguous', async () => {
  const file = join(tmp, 'header.safetensors');
  const tensors = [randomTensor('z', [3], 1), randomTensor('10', [2], 2), randomTensor('a.b', [1, 2], 3), randomTensor('2', [5], 4)];
  await writeSafetensors(file, tensors, { metadata: { step: '7' } });
  const bytes = await readFile(file);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  assert.equal((8 + headerLength) % 8, 0);
  const text = bytes.subarray(8, 8 + headerLength).toString('utf8');
  assert.match(text, /^\{.*\} *$/);
  const json = JSON.parse(text);
  assert.deepEqual(json.__metadata__, { format: 'pt', step: '7' });
  const names = [...text.matchAll(/"([^"]+)":\{"dtype"/g)].map((m) => m[1]); // textual order, not JS key order
  assert.deepEqual(names, ['10', '2', 'a.b', 'z']);
  let end = 0;
  for (const name of names) {
    assert.equal(json[name!].data_offsets[0], end, `${name} starts where the previous tensor ends`);
    end = json[name!].data_offsets[1];
  }
  assert.equal(bytes.length, 8 + headerLength + end);
  assert.deepEqual((await readSafetensorsHeader(file)).metadata, { format: 'pt', step: '7' });
});

test('readTensorF32 reads into a view of a larger buffer and rejects a wrong-sized one', async () => {
  const file = join(tmp, 'view.safetensors');
  const t = bf16ExactTensor('w', [4, 3], 9);
  for (const dtype of ['F32', 'BF16'] as const) {
    await writeSafetensors(file, [t], { dtype });
    const info = (await readSafetensorsHeader(file)).tensors.get('w')!;
    const flat = new Float32Array(20).fill(-1);
    const view = flat.subarray(5, 17);
    assert.equal(await readTensorF32(info, view), view);
    assertSameBits(view, t.data, `w as ${dtype}`);
    assert.deepEqual([...flat.subarray(0, 5)], [-1, -1, -1, -1, -1]);
    assert.deepEqual([...flat.subarray(17)], [-1, -1, -1]);
    await assert.rejects(readTensorF32(info, new Float32Array(11)), /tensor 'w' has 12 elements/);
  }
});

test('readTensorF32 converts every supported dtype', async () => {
  const parts: [string, string, number[], Uint8Array][] = [
    ['f64', 'F64', [2], new Uint8Array(new Float64Array([1.5, -1e300]).buffer)],
    ['i64', 'I64', [2], new Uint8Array(new BigInt64Array([-3n, 1n << 40n]).buffer)],
    ['i32', 'I32', [2], new Uint8Array(new Int32Array([-7, 2 ** 30]).buffer)],
    ['f16', 'F16', [2], new Uint8Array(new Uint16Array([0x3c00, 0xc100]).buffer)],
    ['bf16', 'BF16', [2], new Uint8Array(new Uint16Array([0x3f80, 0xc020]).buffer)],
    ['i16', 'I16', [2], new Uint8Array(new Int16Array([-300, 300]).buffer)],
    ['i8', 'I8', [2], new Uint8Array(new Int8Array([-128, 127]).buffer)],
    ['u8', 'U8', [2], new Uint8Array([0, 255])],
    ['bool', 'BOOL', [3], new Uint8Array([0, 1, 5])],
  ];
  const entries: string[] = [];
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, dtype, shape, bytes] of parts) {
    entries.push(`"${name}":{"dtype":"${dtype}","shape":${JSON.stringify(shape)},"data_offsets":[${offset},${offset + bytes.length}]}`);
    chunks.push(bytes);
    offset += bytes.length;
  }
  const data = new Uint8Array(offset);
  chunks.reduce((at, c) => (data.set(c, at), at + c.length), 0);
  const file = await craftFile('dtypes.safetensors', `{${entries.join(',')}}`, data);
  const values = await readAll((await readSafetensorsHeader(file)).tensors);
  assert.deepEqual(Object.fromEntries([...values].map(([n, v]) => [n, [...v]])), {
    f64: [1.5, -Infinity], i64: [-3, 2 ** 40], i32: [-7, 2 ** 30], f16: [1, -2.5], bf16: [1, -2.5],
    i16: [-300, 300], i8: [-128, 127], u8: [0, 255], bool: [0, 1, 1],
  });
});

test('writeSafetensors rejects bad input naming the tensor, and replaces an existing file atomically', async () => {
  const file = join(tmp, 'atomic.safetensors');
  await writeFile(file, 'old contents that are not a safetensors file');
  await assert.rejects(writeSafetensors(file, [{ name: 'w', shape: [2, 2], data: new Float32Array(3) }]), /tensor 'w'.*4 elements.*3/);
  await assert.rejects(writeSafetensors(file, [randomTensor('d', [2], 1), randomTensor('d', [2], 2)]), /tensor 'd'.*twice/);
  await assert.rejects(writeSafetensors(file, [{ name: 'n', shape: [-1], data: new Float32Array(0) }]), /tensor 'n'.*shape/);
  assert.equal(await readFile(file, 'utf8'), 'old contents that are not a safetensors file', 'a failed write leaves the old file');
  const t = randomTensor('w', [3], 5);
  await writeSafetensors(file, [t]);
  assertSameBits(await readTensorF32((await readSafetensorsHeader(file)).tensors.get('w')!), t.data, 'w');
  assert.deepEqual((await readdir(tmp)).filter((f) => f.includes('.tmp-')), [], 'no temporary file is left behind');
});

// ------------------------------------------------------------------------------------------------ model folders

test('writeModelTensors shards like transformers, writes the index, reads back identical, removes stale files', async () => {
  const dir = join(tmp, 'folder');
  await mkdir(dir);
  await writeFile(join(dir, 'config.json'), '{}');
  // 4 bytes each: 40, 40, 40, 400 (over the limit: a shard of its own), 8
  const tensors = [randomTensor('e', [10], 1), randomTensor('d', [10], 2), randomTensor('c', [10], 3),
    randomTensor('big', [100], 4), randomTensor('a', [2], 5)];
  await writeModelTensors(dir, tensors, { maxShardBytes: 100 });
  const files = (await readdir(dir)).sort();
  assert.deepEqual(files, ['config.json', 'model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors',
    'model-00003-of-00003.safetensors', 'model.safetensors.index.json']);
  const index = JSON.parse(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8'));
  assert.deepEqual(index, {
    metadata: { total_size: 528 },
    weight_map: {
      a: 'model-00003-of-00003.safetensors', big: 'model-00002-of-00003.safetensors', c: 'model-00003-of-00003.safetensors',
      d: 'model-00001-of-00003.safetensors', e: 'model-00001-of-00003.safetensors',
    },
  });
  await assertFolderHolds(dir, tensors);

  // a later, smaller save replaces the shards with one file
  const fewer = tensors.slice(0, 2);
  await writeModelTensors(dir, fewer, { dtype: 'BF16', maxShardBytes: 100 });
  assert.deepEqual((await readdir(dir)).sort(), ['config.json', 'model.safetensors']);
  const single = await listModelTensors(dir);
  assert.equal(single.get('e')!.dtype, 'BF16');
  assert.deepEqual([...single.keys()].sort(), ['d', 'e']);

  // and a sharded save after a single-file one removes model.safetensors (the loader would prefer it)
  await writeModelTensors(dir, tensors, { maxShardBytes: 500 });
  assert.deepEqual((await readdir(dir)).sort(), ['config.json', 'model-00001-of-00002.safetensors',
    'model-00002-of-00002.safetensors', 'model.safetensors.index.json']);
  await assertFolderHolds(dir, tensors);
});

test('writeModelTensors saves one shard as model.safetensors even when a tensor exceeds the limit', async () => {
  const dir = join(tmp, 'one-big');
  const tensors = [randomTensor('big', [100], 1)];
  await writeModelTensors(dir, tensors, { maxShardBytes: 100 });
  assert.deepEqual(await readdir(dir), ['model.safetensors']);
  await assertFolderHolds(dir, tensors);
});

test('parseShardSize reads sizes the way transformers spells max_shard_size', () => {
  assert.equal(parseShardSize('5GB'), 5_000_000_000);
  assert.equal(parseShardSize('500MB'), 500_000_000);
  assert.equal(parseShardSize('2GiB'), 2 * 2 ** 30);
  assert.equal(parseShardSize('10kib'), 10_240);
  assert.equal(parseShardSize('1.5GB'), 1_500_000_000);
  assert.equal(parseShardSize('1234'), 1234);
  assert.equal(parseShardSize(4096), 4096);
  for (const bad of ['', 'GB', '5 parsecs', '-1GB', '0', 'NaN']) assert.throws(() => parseShardSize(bad), /not a size/, bad);
  assert.throws(() => parseShardSize(0), /positive/);
  assert.throws(() => parseShardSize(1.5), /positive/);
});

test('listModelTensors explains a folder without safetensors weights, or a missing folder', async () => {
  const dir = join(tmp, 'pickle-only');
  await mkdir(dir);
  await writeFile(join(dir, 'pytorch_model.bin'), '');
  await writeFile(join(dir, 'config.json'), '{}');
  await assert.rejects(listModelTensors(dir), (error: Error) => {
    assert.ok(error.message.includes(dir));
    assert.match(error.message, /config\.json, pytorch_model\.bin/);
    assert.match(error.message, /\.bin/);
    assert.match(error.message, /safe_serialization=True/);
    return true;
  });
  await assert.rejects(listModelTensors(join(tmp, 'no-such-folder')), /no-such-folder: model folder does not exist/);
});

test('listModelTensors rejects an index that does not match its shards', async () => {
  const dir = join(tmp, 'bad-index');
  await mkdir(dir);
  const shard1 = 'model-00001-of-00002.safetensors';
  const shard2 = 'model-00002-of-00002.safetensors';
  await writeSafetensors(join(dir, shard1), [randomTensor('a', [2], 1), randomTensor('shared', [2], 2)]);
  await writeSafetensors(join(dir, shard2), [randomTensor('b', [2], 3)]);
  const indexFile = join(dir, 'model.safetensors.index.json');
  const writeIndex = (weightMap: Record<string, string>): Promise<void> =>
    writeFile(indexFile, JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));

  await writeIndex({ a: shard1, shared: shard1, b: shard1 }); // b is in shard 2
  await assert.rejects(listModelTensors(dir), /tensor 'b' is listed in model-00001-of-00002\.safetensors/);
  await writeIndex({ a: shard1, b: 'model-00009-of-00009.safetensors' });
  await assert.rejects(listModelTensors(dir), /model-00009-of-00009\.safetensors.*missing/);
  await writeIndex({ a: '../escape.safetensors' });
  await assert.rejects(listModelTensors(dir), /'a'.*not a file name/);
  await writeFile(indexFile, '{"weight_map": ');
  await assert.rejects(listModelTensors(dir), /index\.json: not valid JSON/);

  await writeSafetensors(join(dir, shard2), [randomTensor('b', [2], 3), randomTensor('shared', [2], 4)]);
  await writeIndex({ a: shard1, shared: shard1, b: shard2 });
  await assert.rejects(listModelTensors(dir), /tensor 'shared' is in both/);
  await writeSafetensors(join(dir, shard2), [randomTensor('b', [2], 3)]);
  assert.deepEqual([...(await listModelTensors(dir)).keys()].sort(), ['a', 'b', 'shared']);
});

// ------------------------------------------------------------------------------------------------ corruption

test('a truncated file is rejected, wherever it is cut', async () => {
  const file = join(tmp, 'whole.safetensors');
  await writeSafetensors(file, [randomTensor('a', [5], 1), randomTensor('b', [3], 2)]);
  const bytes = await readFile(file);
  const headerEnd = 8 + Number(bytes.readBigUInt64LE(0));
  for (const cut of [0, 4, 7, 8, 20, headerEnd - 1, headerEnd, headerEnd + 3, bytes.length - 1]) {
    const cutFile = join(tmp, `cut-${cut}.safetensors`);
    await writeFile(cutFile, bytes.subarray(0, cut));
    await assertRejects(cutFile, /truncated|corrupt|shorter/);
  }
});

test('corrupt headers are rejected with the file, the tensor and the problem named', async () => {
  const data = f32Bytes(1, 2, 3, 4);
  const entry = (name: string, body: string): string => `{"${name}":${body}}`;
  const cases: [string, Promise<string>, ...(string | RegExp)[]][] = [
    ['huge header length', craftFile('huge.safetensors', '{}', data, 1n << 62n), 'exceeds'],
    ['header over 100 MB', craftFile('over.safetensors', '{}', data, 100_000_008n), 'exceeds'],
    ['header past the end', craftFile('past.safetensors', '{}', data, 64n), 'past the end'],
    ['zero header length', craftFile('zero.safetensors', '{}', data, 0n), 'header length is 0'],
    ['garbage JSON', craftFile('garbage.safetensors', '{"a": {dtype', data), 'not valid UTF-8 JSON'],
    ['invalid UTF-8', craftFile('utf8.safetensors', new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]), data), 'UTF-8'],
    ['not an object', craftFile('array.safetensors', '[1, 2]', data), 'not a JSON object'],
    ['unknown dtype', craftFile('dtype.safetensors', entry('w', '{"dtype":"F8_E4M3","shape":[16],"data_offsets":[0,16]}'), data), "tensor 'w'", 'F8_E4M3'],
    ['missing dtype', craftFile('nodtype.safetensors', entry('w', '{"shape":[4],"data_offsets":[0,16]}'), data), "tensor 'w'", 'dtype'],
    ['entry not an object', craftFile('entry.safetensors', entry('w', '[1]'), data), "tensor 'w'"],
    ['negative dim', craftFile('neg.safetensors', entry('w', '{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}'), data), "tensor 'w'", 'shape'],
    ['fractional dim', craftFile('frac.safetensors', entry('w', '{"dtype":"F32","shape":[1.5],"data_offsets":[0,16]}'), data), "tensor 'w'", 'shape'],
    ['string shape', craftFile('sshape.safetensors', entry('w', '{"dtype":"F32","shape":"4","data_offsets":[0,16]}'), data), "tensor 'w'", 'shape'],
    ['bad offsets', craftFile('offs.safetensors', entry('w', '{"dtype":"F32","shape":[4],"data_offsets":[0]}'), data), "tensor 'w'", 'data_offsets'],
    ['reversed offsets', craftFile('rev.safetensors', entry('w', '{"dtype":"F32","shape":[0],"data_offsets":[16,0]}'), data), "tensor 'w'", 'begin <= end'],
    ['shape/bytes mismatch', craftFile('mismatch.safetensors', entry('w', '{"dtype":"F32","shape":[3],"data_offsets":[0,16]}'), data), "tensor 'w'", 'needs 12 bytes'],
    ['absurd shape', craftFile('absurd.safetensors', entry('w', '{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,16]}'), data), "tensor 'w'", 'needs'],
    ['offsets past the data', craftFile('outside.safetensors', entry('w', '{"dtype":"F32","shape":[5],"data_offsets":[0,20]}'), data), "tensor 'w'", 'do not fit the 16-byte data section'],
    ['overlapping tensors', craftFile('overlap.safetensors',
      '{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}', data), "'a' and 'b' overlap"],
    ['non-string metadata', craftFile('meta.safetensors', '{"__metadata__":{"format":1}}', data), '__metadata__'],
  ];
  for (const [what, made, ...mentions] of cases) {
    const file = await made;
    await assert.doesNotReject(assertRejects(file, ...mentions), what);
  }
});

test('a file deleted or shrunk after its header was read gives an error, not a short read', async () => {
  const file = join(tmp, 'shrinks.safetensors');
  await writeSafetensors(file, [randomTensor('w', [1000], 1)]);
  const info = (await readSafetensorsHeader(file)).tensors.get('w')!;
  const handle = await open(file, 'r+');
  await handle.truncate(info.start + 100);
  await handle.close();
  await assert.rejects(readTensorF32(info), (error: Error) => error.message.includes(file) && /truncated/.test(error.message));
  await rm(file);
  await assert.rejects(readTensorF32(info), (error: Error) => error.message.includes(file) && /no such file/.test(error.message));
});

// ------------------------------------------------------------------------------------------------ large files

test('positioned reads work past 2 GiB (sparse file, no disk used)', async () => {
  const fillerBytes = 2_200_000_000; // > 2^31: the tensor after it starts beyond what a 32-bit offset reaches
  const values = f32Bytes(1.25, -3, 1e-20, 65504);
  const header = `{"filler":{"dtype":"U8","shape":[${fillerBytes}],"data_offsets":[0,${fillerBytes}]},` +
    `"x":{"dtype":"F32","shape":[2,2],"data_offsets":[${fillerBytes},${fillerBytes + values.length}]}}`;
  const json = new TextEncoder().encode(header.padEnd(Math.ceil(header.length / 8) * 8, ' '));
  const file = join(tmp, 'sparse.safetensors');
  const handle = await open(file, 'w');
  try {
    const lengthField = new Uint8Array(8);
    new DataView(lengthField.buffer).setBigUint64(0, BigInt(json.length), true);
    await handle.write(lengthField, 0, 8, 0);
    await handle.write(json, 0, json.length, 8);
    const dataStart = 8 + json.length;
    await handle.truncate(dataStart + fillerBytes + values.length);
    await handle.write(values, 0, values.length, dataStart + fillerBytes);
  } finally {
    await handle.close();
  }
  try {
    const info = (await readSafetensorsHeader(file)).tensors.get('x')!;
    assert.ok(info.start > 2 ** 31);
    assert.deepEqual([...(await readTensorF32(info))], [1.25, -3, new Float32Array([1e-20])[0], 65504]);
  } finally {
    await rm(file);
  }
});
