// Hostile and broken model folders (issue 13): each test reproduces one defect an audit found with a downloaded
// file or a bad setting, and checks the fix: every case ends quickly with one clear error that names the file
// (and the field or tensor), never a crash, a stack overflow, a huge allocation or a model that computes NaN.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, loadAdapter, saveAdapter } from '../src/io/adapter.js';
import { loadModel, saveModel } from '../src/io/hf-model.js';
import { LoraAdapters } from '../src/lora/adapters.js';
import { listModelTensors } from '../src/io/model-files.js';
import { readSafetensorsHeader } from '../src/io/safetensors.js';
import { parseConfig } from '../src/model/config.js';
import { createModel, MAX_PARAMETERS } from '../src/model/create.js';
import { withTmp as withTmpDir } from './helpers/test-files.js';

const tinyLlama = {
  model_type: 'llama', vocab_size: 11, hidden_size: 8, intermediate_size: 12, num_hidden_layers: 2,
  num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 32, rms_norm_eps: 1e-6, rope_theta: 10000,
};

const withTmp = (fn: (dir: string) => Promise<void>): Promise<void> => withTmpDir('orpo-hostile-', fn);

/** A valid tiny model folder whose config.json is then replaced by `raw`. */
async function folderWithConfig(dir: string, raw: Record<string, unknown>): Promise<void> {
  await saveModel(createModel(tinyLlama, { seed: 1 }), dir);
  await writeFile(join(dir, 'config.json'), JSON.stringify(raw));
}

/** Asserts a clean error: an Error whose one-line-ish message names every `mention` and stays short. */
async function assertCleanError(action: () => Promise<unknown>, ...mentions: (string | RegExp)[]): Promise<Error> {
  let caught: unknown = null;
  try {
    await action();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof Error, `expected an Error, got ${String(caught)}`);
  const { message } = caught;
  for (const m of mentions) {
    if (typeof m === 'string') assert.ok(message.includes(m), `message mentions '${m}': ${message.slice(0, 500)}`);
    else assert.match(message, m);
  }
  assert.doesNotMatch(message, /Maximum call stack|Invalid typed array length|Array buffer allocation failed|EISDIR/);
  assert.ok(message.length < 1000, `message is ${message.length} characters long: ${message.slice(0, 300)}...`);
  return caught;
}

/** A safetensors file from header text (padded to 8 bytes as writers do) and data bytes. */
async function craft(file: string, header: string, data: Uint8Array = new Uint8Array(0)): Promise<string> {
  const json = Buffer.from(header.padEnd(Math.ceil(Buffer.byteLength(header) / 8) * 8, ' '));
  const bytes = Buffer.alloc(8 + json.length + data.length);
  bytes.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(bytes, 8);
  bytes.set(data, 8 + json.length);
  await writeFile(file, bytes);
  return file;
}

const f32 = (dims: number[], begin: number, end: number): string =>
  JSON.stringify({ dtype: 'F32', shape: dims, data_offsets: [begin, end] });

// ------------------------------------------------------------------------------------------------ memory before validation

test('a config claiming a million layers is refused naming the field, before anything is allocated', async () => {
  await withTmp(async (dir) => {
    await folderWithConfig(dir, { ...tinyLlama, num_hidden_layers: 1_000_000 });
    const before = process.memoryUsage().rss;
    await assertCleanError(() => loadModel(dir), join(dir, 'config.json'), "'num_hidden_layers'", '16384');
    assert.ok(process.memoryUsage().rss - before < 200e6, 'no allocation for the claimed layers');
  });
});

test('a config claiming more layers than the weights hold names the field and both counts before allocating', async () => {
  await withTmp(async (dir) => {
    // 5,000 layers of this width would allocate; the weights hold 2
    await folderWithConfig(dir, { ...tinyLlama, num_hidden_layers: 5000, hidden_size: 4096, intermediate_size: 16384, num_attention_heads: 32, num_key_value_heads: 8 });
    await assertCleanError(() => loadModel(dir), join(dir, 'model.safetensors'), 'config.json implies', 'hidden_size = 4096');
    await folderWithConfig(dir, { ...tinyLlama, num_hidden_layers: 5000 });
    await assertCleanError(() => loadModel(dir), join(dir, 'config.json'), "'num_hidden_layers' is 5000", 'hold 2 layer(s)');
  });
});

test('sizes past 2^32 elements are checked against the weights, naming the file and the fields, not "Invalid typed array length"', async () => {
  await withTmp(async (dir) => {
    // the embedding alone would be 2^24 * 2^20 = 2^44 floats
    await folderWithConfig(dir, { ...tinyLlama, vocab_size: 2 ** 24, hidden_size: 2 ** 20, intermediate_size: 8, num_attention_heads: 2 });
    await assertCleanError(() => loadModel(dir), join(dir, 'model.safetensors'), /tensor '(lm_head|model\.embed_tokens)\.weight'/,
      'vocab_size = 16777216', 'hidden_size = 1048576');
  });
  // without weight files to compare with (a random model), the total is checked before the buffers are allocated
  await assertCleanError(async () => createModel({ ...tinyLlama, vocab_size: 2 ** 24, hidden_size: 1024, num_attention_heads: 8 }),
    'parameters', String(MAX_PARAMETERS), 'model.embed_tokens.weight', 'vocab_size');
});

// ------------------------------------------------------------------------------------------------ absurd numbers

const ABSURD: [string, Record<string, unknown>, string][] = [
  ['rope_theta 0', { rope_theta: 0 }, "'rope_theta' must be a finite number greater than 0, got 0"],
  ['rope_theta -1', { rope_theta: -1 }, "'rope_theta'"],
  ['rope_theta a string', { rope_theta: '10000' }, "'rope_theta'"],
  ['negative rms_norm_eps', { rms_norm_eps: -1e-6 }, "'rms_norm_eps' must be a finite number greater than 0 and at most 1"],
  ['rms_norm_eps 0', { rms_norm_eps: 0 }, "'rms_norm_eps'"],
  ['rope_scaling.factor 0', { rope_scaling: { rope_type: 'llama3', factor: 0 } }, "'rope_scaling.factor' must be a finite number at least 1, got 0"],
  ['rope_scaling.factor -8', { rope_scaling: { rope_type: 'llama3', factor: -8 } }, "'rope_scaling.factor'"],
  ['high_freq_factor = low_freq_factor', { rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 4, high_freq_factor: 4 } }, "'rope_scaling.high_freq_factor' must be a finite number greater than 4"],
  ['low_freq_factor 0', { rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 0 } }, "'rope_scaling.low_freq_factor'"],
  ['original_max_position_embeddings 0', { rope_scaling: { rope_type: 'llama3', factor: 8, original_max_position_embeddings: 0 } }, "'rope_scaling.original_max_position_embeddings'"],
  ['rope_scaling a list', { rope_scaling: [1, 2] }, "'rope_scaling' must be an object or null"],
  ['mistral sliding_window -5', { model_type: 'mistral', sliding_window: -5 }, "'sliding_window' must be a whole number from 1 to"],
  ['mistral sliding_window 0', { model_type: 'mistral', sliding_window: 0 }, "'sliding_window'"],
  ['qwen2 sliding_window 2.5', { model_type: 'qwen2', use_sliding_window: true, sliding_window: 2.5 }, "'sliding_window'"],
  ['max_position_embeddings -1', { max_position_embeddings: -1 }, "'max_position_embeddings'"],
  ['vocab_size 1.5', { vocab_size: 1.5 }, "'vocab_size' must be a whole number"],
  ['vocab_size 1e12', { vocab_size: 1e12 }, "'vocab_size' must be a whole number from 1 to 16777216"],
  ['hidden_size 2^31', { hidden_size: 2 ** 31 }, "'hidden_size'"],
  ['num_key_value_heads above num_attention_heads', { num_key_value_heads: 4 }, "'num_key_value_heads' must be a whole number from 1 to 2"],
  ['partial_rotary_factor NaN-like string', { partial_rotary_factor: 'x' }, "'partial_rotary_factor'"],
  ['bos_token_id 1.5', { bos_token_id: 1.5 }, "'bos_token_id' must be a whole number"],
  ['eos_token_id with a string', { eos_token_id: [1, 'x'] }, "'eos_token_id'"],
  ['gpt2 negative layer_norm_epsilon', { model_type: 'gpt2', n_embd: 8, n_head: 2, n_layer: 1, layer_norm_epsilon: -1 }, "'layer_norm_epsilon'"],
  ['gpt2 n_positions 0', { model_type: 'gpt2', n_embd: 8, n_head: 2, n_layer: 1, n_positions: 0 }, "'n_positions'"],
  ['a 10 MB model_type', { model_type: 'x'.repeat(10_000_000) }, 'is not supported'],
];

test('absurd numbers in config.json are refused where they are parsed, naming the file, the field and the range', () => {
  for (const [what, change, expected] of ABSURD) {
    const raw = { ...tinyLlama, ...change };
    assert.throws(() => parseConfig(raw), (error: Error) => {
      assert.ok(error.message.startsWith('config.json: '), `${what}: names the file: ${error.message.slice(0, 200)}`);
      assert.ok(error.message.includes(expected), `${what}: ${error.message.slice(0, 300)}`);
      assert.ok(error.message.length < 400, `${what}: message of ${error.message.length} characters`);
      return true;
    }, what);
  }
});

test('loadModel names the folder\'s config.json; createModel checks initializer_range', async () => {
  await withTmp(async (dir) => {
    await folderWithConfig(dir, { ...tinyLlama, rope_theta: -1 });
    await assertCleanError(() => loadModel(dir), `${join(dir, 'config.json')}: 'rope_theta' must be a finite number greater than 0, got -1`);
  });
  assert.throws(() => createModel({ ...tinyLlama, initializer_range: -0.02 }), /config\.json: 'initializer_range' must be a finite number at least 0/);
  assert.throws(() => createModel({ ...tinyLlama, initializer_range: 'wide' }), /'initializer_range'/);
});

test('valid unusual values still load: pad_token_id -1 (none), eos lists, null sliding_window, rope_scaling default', () => {
  const config = parseConfig({ ...tinyLlama, pad_token_id: -1, bos_token_id: 1, eos_token_id: [2, 3], rope_scaling: { rope_type: 'default' } });
  assert.equal(config.padTokenId, null);
  assert.equal(config.bosTokenId, 1);
  assert.deepEqual(config.eosTokenId, [2, 3]);
  assert.equal(config.ropeScaling, null);
  assert.equal(parseConfig({ ...tinyLlama, model_type: 'mistral', sliding_window: null }).slidingWindow, null);
  assert.equal(parseConfig({ ...tinyLlama, model_type: 'mistral', sliding_window: 4096 }).slidingWindow, 4096);
  const scaled = parseConfig({ ...tinyLlama, max_position_embeddings: 131072, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } });
  assert.deepEqual(scaled.ropeScaling, { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
});

// ------------------------------------------------------------------------------------------------ safetensors

test('a deeply nested shape gives an error naming the file and tensor, not a stack overflow', async () => {
  await withTmp(async (dir) => {
    const depth = 200_000;
    const file = await craft(join(dir, 'nested.safetensors'),
      `{"w":{"dtype":"F32","shape":${'['.repeat(depth)}${']'.repeat(depth)},"data_offsets":[0,0]}}`);
    await assertCleanError(() => readSafetensorsHeader(file), file, "tensor 'w' shape [[...]]", 'not a list of non-negative integers');
  });
});

test('error messages quote untrusted names, dtypes and values only up to a bound', async () => {
  await withTmp(async (dir) => {
    // within the 1 MiB a header may always have; a larger one needs data and takes the same paths
    const huge = 'n'.repeat(900_000);
    const cases: [string, string][] = [
      ['name.safetensors', `{"${huge}":{"dtype":"F8_E4M3","shape":[0],"data_offsets":[0,0]}}`],
      ['dtype.safetensors', `{"w":{"dtype":"${huge}","shape":[0],"data_offsets":[0,0]}}`],
      ['shape.safetensors', `{"w":{"dtype":"F32","shape":["${huge}"],"data_offsets":[0,0]}}`],
      ['longshape.safetensors', `{"w":{"dtype":"F32","shape":[${'1,'.repeat(400_000)}2],"data_offsets":[0,0]}}`],
      ['offsets.safetensors', `{"w":{"dtype":"F32","shape":[0],"data_offsets":[${'0,'.repeat(400_000)}0]}}`],
      // 150,000 dims: an exact (BigInt) element count grows quadratically in time, and its digits in the message
      ['manydims.safetensors', `{"w":{"dtype":"F32","shape":[${'1000,'.repeat(150_000)}7],"data_offsets":[0,0]}}`],
      ['meta.safetensors', `{"__metadata__":{"${huge}":[1]}}`],
    ];
    for (const [name, header] of cases) {
      const file = await craft(join(dir, name), header);
      const error = await assertCleanError(() => readSafetensorsHeader(file), file);
      assert.doesNotMatch(error.message, /n{200}/, name);
      await rm(file);
    }
    // control characters in a name are escaped, so that a message stays one line
    const file = await craft(join(dir, 'newline.safetensors'), '{"a\\nb\\u0000":{"dtype":"F8_E4M3","shape":[0],"data_offsets":[0,0]}}');
    await assertCleanError(() => readSafetensorsHeader(file), file, "tensor 'a\\x0ab\\x00'");
  });
});

test('the reference rules: tensors tile the data section exactly (no gap, no overlap, no trailing bytes)', async () => {
  await withTmp(async (dir) => {
    const data16 = new Uint8Array(16);
    const refused: [string, string, Uint8Array, string][] = [
      ['gap', `{"a":${f32([1], 0, 4)},"b":${f32([2], 8, 16)}}`, data16, 'bytes 4 to 8 of the data section belong to no tensor'],
      ['gap at the start', `{"a":${f32([3], 4, 16)}}`, data16, 'bytes 0 to 4'],
      ['trailing bytes', `{"a":${f32([3], 0, 12)}}`, data16, 'the last 4 bytes of the file belong to no tensor'],
      ['data but no tensors', '{}', data16, 'the last 16 bytes'],
      ['empty tensor inside another', `{"a":${f32([4], 0, 16)},"z":${f32([0], 4, 4)}}`, data16, "tensors 'a' and 'z' overlap"],
      ['overlap', `{"a":${f32([3], 0, 12)},"b":${f32([2], 8, 16)}}`, data16, "tensors 'a' and 'b' overlap"],
      ['duplicate range', `{"a":${f32([4], 0, 16)},"b":${f32([4], 0, 16)}}`, data16, 'overlap'],
    ];
    for (const [what, header, data, expected] of refused) {
      const file = await craft(join(dir, `${what.replaceAll(' ', '-')}.safetensors`), header, data);
      await assertCleanError(() => readSafetensorsHeader(file), file, expected);
    }
    // what the reference accepts: any key order, empty tensors at the boundaries, no tensors and no data
    const accepted: [string, string, Uint8Array, string[]][] = [
      ['out of order', `{"b":${f32([2], 8, 16)},"a":${f32([2], 0, 8)}}`, data16, ['a', 'b']],
      ['empty tensors at boundaries', `{"z0":${f32([0], 0, 0)},"a":${f32([2], 0, 8)},"z1":${f32([2, 0], 8, 8)},"b":${f32([2], 8, 16)},"z2":${f32([0], 16, 16)}}`, data16, ['a', 'b', 'z0', 'z1', 'z2']],
      ['nothing', '{"__metadata__":null}', new Uint8Array(0), []],
    ];
    for (const [what, header, data, names] of accepted) {
      const file = await craft(join(dir, `${what.replaceAll(' ', '-')}.safetensors`), header, data);
      assert.deepEqual([...(await readSafetensorsHeader(file)).tensors.keys()].sort(), names, what);
    }
  });
});

test('a huge header describing no data is refused before it is read (cost bounded by the file)', async () => {
  await withTmp(async (dir) => {
    // 100 MB of header (1.7 million empty tensors took 10 s and 1.7 GB): a sparse file, so no disk is used
    const file = join(dir, 'huge-header.safetensors');
    const headerLength = 99_999_992;
    const handle = await open(file, 'w');
    const lengthField = Buffer.alloc(8);
    lengthField.writeBigUInt64LE(BigInt(headerLength));
    await handle.write(lengthField, 0, 8, 0);
    await handle.truncate(8 + headerLength);
    await handle.close();
    const started = performance.now();
    await assertCleanError(() => readSafetensorsHeader(file), file, `header length ${headerLength} exceeds what 0 bytes of tensor data can need`);
    assert.ok(performance.now() - started < 2000, 'refused without parsing');
    // past the 1 MiB allowance a header may be 1/128 of the data: 2 MiB needs 128 MiB of data (sparse again)
    const sized = async (dataBytes: number): Promise<void> => {
      const h = await open(file, 'w');
      const field = Buffer.alloc(8);
      field.writeBigUInt64LE(BigInt(2 << 20));
      await h.write(field, 0, 8, 0);
      await h.truncate(8 + (2 << 20) + dataBytes);
      await h.close();
    };
    await sized(128 << 20);
    await assertCleanError(() => readSafetensorsHeader(file), file, 'header is not valid UTF-8 JSON'); // read and parsed
    await sized((128 << 20) - 128);
    await assertCleanError(() => readSafetensorsHeader(file), file, 'exceeds what 134217600 bytes of tensor data can need');
    // a header within the fixed allowance is read as before: 10,000 empty tensors (~550 KB)
    const many = Array.from({ length: 10_000 }, (_, i) => `"t${i}":${f32([0], 0, 0)}`).join(',');
    const small = await craft(join(dir, 'many.safetensors'), `{${many}}`);
    assert.equal((await readSafetensorsHeader(small)).tensors.size, 10_000);
  });
});

test('a weight_map shard of "." or a folder is refused naming the index file, not a bare EISDIR', async () => {
  await withTmp(async (dir) => {
    await saveModel(createModel(tinyLlama, { seed: 1 }), dir, { maxShardBytes: 400 });
    const indexFile = join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(await readFile(indexFile, 'utf8')) as { weight_map: Record<string, string> };
    const withShard = (shard: string): string => JSON.stringify({ ...index, weight_map: { ...index.weight_map, 'model.norm.weight': shard } });
    for (const shard of ['.', '..', 'sub/x.safetensors', 'a\\b', '', 'x'.repeat(100_000), 'nul\0.safetensors']) {
      await writeFile(indexFile, withShard(shard));
      await assertCleanError(() => listModelTensors(dir), indexFile, 'not a file name in the model folder');
    }
    await mkdir(join(dir, 'folder.safetensors'));
    await writeFile(indexFile, withShard('folder.safetensors'));
    await assertCleanError(() => listModelTensors(dir), indexFile, "lists shard 'folder.safetensors'", 'not a file');
  });
});

test('a model.safetensors or config.json that is a folder or a pipe is refused without hanging', async () => {
  await withTmp(async (dir) => {
    await mkdir(join(dir, 'model.safetensors'));
    await assertCleanError(() => listModelTensors(dir), join(dir, 'model.safetensors'), 'not a regular file');
    await mkdir(join(dir, 'config.json'));
    await assertCleanError(() => loadModel(dir), join(dir, 'config.json'), 'not a regular file');
    let hasMkfifo = true;
    try {
      execFileSync('mkfifo', [join(dir, 'pipe.safetensors')]);
    } catch {
      hasMkfifo = false;
    }
    // opening a pipe for reading would block until a writer appears: the test would hang, not fail
    if (hasMkfifo) await assertCleanError(() => readSafetensorsHeader(join(dir, 'pipe.safetensors')), 'pipe.safetensors', 'not a regular file');
  });
});

// ------------------------------------------------------------------------------------------------ adapters

/** A valid q_proj adapter (r = 2) of the tiny llama in dir, and a way to rewrite its adapter_config.json. */
async function adapterFolder(dir: string) {
  const model = createModel(tinyLlama, { seed: 1 });
  await saveAdapter(new LoraAdapters(model, { r: 2, alpha: 4, dropout: 0, targetModules: ['q_proj'], useRslora: false }), dir);
  const configFile = join(dir, ADAPTER_CONFIG_FILE);
  const config = JSON.parse(await readFile(configFile, 'utf8')) as Record<string, unknown>;
  const withConfig = (change: Record<string, unknown>): Promise<void> => writeFile(configFile, JSON.stringify({ ...config, ...change }));
  return { model, configFile, withConfig };
}

test('an adapter\'s r is checked against its weights before the adapter is allocated; its config is quoted with bounds', async () => {
  await withTmp(async (dir) => {
    const { model, configFile, withConfig } = await adapterFolder(dir);
    // r = 10^9 would allocate 10^9 * (8 + 8) floats per module before the file was looked at
    await withConfig({ r: 1e9 });
    await assertCleanError(() => loadAdapter(dir, model), join(dir, ADAPTER_WEIGHTS_FILE), 'r=1000000000');
    await writeFile(configFile, `{"peft_type":"LORA","r":2,"target_modules":${'['.repeat(100_000)}${']'.repeat(100_000)}}`);
    await assertCleanError(() => loadAdapter(dir, model), configFile, 'target_modules must be a list');
    await withConfig({ r: 'x'.repeat(1_000_000) });
    await assertCleanError(() => loadAdapter(dir, model), configFile, 'r must be a positive integer');
    await writeFile(configFile, 'null');
    await assertCleanError(() => loadAdapter(dir, model), configFile, 'not a JSON object');
    await withConfig({ lora_alpha: -1 });
    await assertCleanError(() => loadAdapter(dir, model), configFile, 'lora_alpha');
    await withConfig({ target_modules: ['q_proj', 'x'.repeat(100_000)] });
    await assertCleanError(() => loadAdapter(dir, model), configFile, 'longer than 1000 characters');
    await withConfig({ target_modules: ['q_proj', 'nothing'] });
    await assertCleanError(() => loadAdapter(dir, model), configFile, "'nothing' match no projection");
    await withConfig({ target_modules: '(unclosed' });
    await assertCleanError(() => loadAdapter(dir, model), configFile, 'not a valid regular expression');
    await withConfig({ target_modules: 'nothing_.*' });
    await assertCleanError(() => loadAdapter(dir, model), configFile, 'matches no projection');
  });
});

test('a target_modules regex that backtracks exponentially is refused, not run', async () => {
  await withTmp(async (dir) => {
    const { model, configFile, withConfig } = await adapterFolder(dir);
    // matched against every module name, (.*)* tries exponentially many splits of each (did not finish in minutes)
    await withConfig({ target_modules: '(.*)*x' });
    await assertCleanError(() => loadAdapter(dir, model), configFile, 'repeats a group that itself repeats');
    // what PEFT users write still works
    await withConfig({ target_modules: '.*\\.(q_proj)' });
    assert.equal((await loadAdapter(dir, model)).layers.length, 2);
  });
});
