// GGUF export without llama.cpp: the encodings bit for bit (q8_0 as ggml's quantize_row_q8_0_ref, f16/bf16
// round-to-nearest-even), the file read back by a small independent reader (names, shapes, types, tied heads,
// metadata), the RoPE row permutation, the refusals (tokenizers and models llama.cpp cannot reproduce), atomic
// writing, and the `orpo export` command.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createModel } from '../src/model/create.js';
import { loadModel, readConfigJson, saveModel } from '../src/io/hf-model.js';
import { parseConfig } from '../src/model/config.js';
import { saveAdapter } from '../src/io/adapter.js';
import { attachLora } from '../src/lora/adapters.js';
import { encodeTensor, quantizeQ8_0, dequantizeQ8_0 } from '../src/io/gguf/quantize.js';
import { permuteRowsForInterleavedRope } from '../src/io/gguf/architecture.js';
import { exportModelFolderToGguf, folderParamReader, writeModelGguf } from '../src/io/gguf/export.js';
import { classifyTokenizer, sentencePieceScores } from '../src/io/gguf/vocab.js';
import { tinyTokenizerFiles } from './data-tiny-tokenizer.js';
import { repoRoot, sharedDir, SHARED_MISSING } from './helpers/shared.js';

// ------------------------------------------------------------------------------------------------ a GGUF reader

interface ReadGguf {
  version: number;
  metadata: Map<string, unknown>;
  tensors: Map<string, { shape: number[]; type: number; offset: number }>;
  dataStart: number;
  bytes: Buffer;
}

/** An independent reader of the GGUF container (only what these tests look at). */
function readGguf(file: string): ReadGguf {
  const bytes = readFileSync(file);
  let pos = 0;
  const u32 = (): number => { const v = bytes.readUInt32LE(pos); pos += 4; return v; };
  const u64 = (): number => { const v = Number(bytes.readBigUInt64LE(pos)); pos += 8; return v; };
  const str = (): string => { const n = u64(); const s = bytes.toString('utf8', pos, pos + n); pos += n; return s; };
  const value = (type: number): unknown => {
    switch (type) {
      case 4: return u32();
      case 5: { const v = bytes.readInt32LE(pos); pos += 4; return v; }
      case 6: { const v = bytes.readFloatLE(pos); pos += 4; return v; }
      case 7: return bytes[pos++] !== 0;
      case 8: return str();
      case 9: { const t = u32(); const n = u64(); return Array.from({ length: n }, () => value(t)); }
      default: throw new Error(`value type ${type}`);
    }
  };
  assert.equal(bytes.toString('latin1', 0, 4), 'GGUF');
  pos = 4;
  const version = u32();
  const tensorCount = u64();
  const kvCount = u64();
  const metadata = new Map<string, unknown>();
  for (let i = 0; i < kvCount; i++) {
    const key = str();
    metadata.set(key, value(u32()));
  }
  const tensors = new Map<string, { shape: number[]; type: number; offset: number }>();
  for (let i = 0; i < tensorCount; i++) {
    const name = str();
    const dims = u32();
    const ne = Array.from({ length: dims }, () => u64());
    tensors.set(name, { shape: ne.reverse(), type: u32(), offset: u64() });
  }
  const dataStart = Math.ceil(pos / 32) * 32;
  return { version, metadata, tensors, dataStart, bytes };
}

const F32 = 0, F16 = 1, Q8_0 = 8, BF16 = 30;

async function tinyModelDir(raw: Record<string, unknown>): Promise<{ dir: string; model: ReturnType<typeof createModel> }> {
  const dir = mkdtempSync(join(tmpdir(), 'orpo-gguf-fmt-'));
  const model = createModel(raw, { seed: 1 });
  await saveModel(model, dir);
  const files = tinyTokenizerFiles({ padToken: true, chatTemplate: '{% for m in messages %}{{ m.content }}{% endfor %}' });
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(files.tokenizer));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(files.config));
  return { dir, model };
}

const llamaRaw = {
  model_type: 'llama', vocab_size: 264, hidden_size: 64, intermediate_size: 48, num_hidden_layers: 1,
  num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, tie_word_embeddings: true,
};

// ------------------------------------------------------------------------------------------------ encodings

test('q8_0 is ggml\'s: f16 scale amax/127, values roundf(x / d) with halves away from zero, zero blocks', () => {
  // amax 127 gives d = 1 exactly, so the quantised values are x rounded, ties away from zero
  const x = new Float32Array(64);
  x.set([2.5, -2.5, 0.5, -0.5, 126.5, -127, 3.49, 0]);
  const q = quantizeQ8_0(x);
  assert.equal(q.length, 2 * 34);
  assert.equal(q[0]! | (q[1]! << 8), 0x3c00, 'scale 1.0 in f16');
  assert.deepEqual(Array.from(new Int8Array(q.buffer, 2, 8)), [3, -3, 1, -1, 127, -127, 3, 0]);
  // the second block is all zeros: scale 0, values 0
  assert.deepEqual(Array.from(q.subarray(34)), new Array(34).fill(0));
  // amax 1: d = 1/127, stored as f16 0x2008; ggml multiplies by 1/d computed from the float32 d
  const y = new Float32Array(32).fill(0.25);
  y[5] = -1;
  const qy = quantizeQ8_0(y);
  assert.equal(qy[0]! | (qy[1]! << 8), 0x2008);
  assert.equal(new Int8Array(qy.buffer, 2, 32)[5], -127);
  assert.equal(new Int8Array(qy.buffer, 2, 32)[0], 32); // 0.25 * 127 = 31.75
  const back = dequantizeQ8_0(qy);
  assert.ok(Math.abs(back[0]! - 0.25) < 0.5 / 127 + 1e-6);
  assert.throws(() => quantizeQ8_0(new Float32Array(31)), /blocks of 32/);
});

test('f16 and bf16 round to nearest, ties to even', () => {
  const f16 = encodeTensor('F16', Float32Array.from([1 + 2 ** -11, 1 + 3 * 2 ** -11, -2]), 3);
  assert.deepEqual(Array.from(new Uint16Array(f16.buffer, f16.byteOffset, 3)), [0x3c00, 0x3c02, 0xc000]);
  const bf16 = encodeTensor('BF16', Float32Array.from([1 + 2 ** -8, 1 + 3 * 2 ** -8, -2]), 3);
  assert.deepEqual(Array.from(new Uint16Array(bf16.buffer, bf16.byteOffset, 3)), [0x3f80, 0x3f82, 0xc000]);
});

test('Llama q/k rows move from transformers\' halves to llama.cpp\'s interleaved pairs, per head', () => {
  // 2 heads of dimension 4, one column: rows [h0: a0 a1 b0 b1 | h1: ...] -> [a0 b0 a1 b1 | ...]
  const w = Float32Array.from([0, 1, 2, 3, 10, 11, 12, 13]);
  assert.deepEqual(Array.from(permuteRowsForInterleavedRope(w, 2, 1)), [0, 2, 1, 3, 10, 12, 11, 13]);
  // with two columns, whole rows move
  const w2 = Float32Array.from([0, 0, 1, 1, 2, 2, 3, 3]);
  assert.deepEqual(Array.from(permuteRowsForInterleavedRope(w2, 1, 2)), [0, 0, 2, 2, 1, 1, 3, 3]);
});

// ------------------------------------------------------------------------------------------------ the file

test('a tied Llama in q8_0: names, ne order, types (vectors f32, rows of 48 fall back to f16), no output.weight, metadata', async () => {
  const { dir, model } = await tinyModelDir(llamaRaw);
  try {
    const file = join(dir, 'm.gguf');
    await exportModelFolderToGguf(dir, file, { dtype: 'q8_0' });
    const g = readGguf(file);
    assert.equal(g.version, 3);
    assert.equal(g.metadata.get('general.architecture'), 'llama');
    assert.equal(g.metadata.get('general.file_type'), 7);
    assert.equal(g.metadata.get('llama.block_count'), 1);
    assert.equal(g.metadata.get('llama.attention.head_count_kv'), 2);
    assert.equal(g.metadata.get('llama.rope.dimension_count'), 16);
    assert.equal(g.metadata.get('tokenizer.ggml.model'), 'gpt2');
    assert.equal(g.metadata.get('tokenizer.ggml.pre'), 'gpt-2');
    assert.equal(g.metadata.get('tokenizer.chat_template'), '{% for m in messages %}{{ m.content }}{% endfor %}');
    const tokens = g.metadata.get('tokenizer.ggml.tokens') as string[];
    assert.equal(tokens.length, 264);
    assert.deepEqual(tokens.slice(258), ['<s>', '</s>', '<pad>', '[PAD261]', '[PAD262]', '[PAD263]']);
    assert.deepEqual((g.metadata.get('tokenizer.ggml.token_type') as number[]).slice(256), [1, 1, 3, 3, 3, 5, 5, 5]);
    assert.deepEqual(g.metadata.get('tokenizer.ggml.merges'), ['Ġ a', 'h i']);
    assert.equal(g.metadata.get('tokenizer.ggml.eos_token_id'), 259);
    assert.equal(g.metadata.get('tokenizer.ggml.padding_token_id'), 260);
    assert.equal(g.tensors.has('output.weight'), false, 'a tied head is token_embd alone');
    assert.deepEqual(g.tensors.get('token_embd.weight'), { shape: [264, 64], type: Q8_0, offset: 0 });
    assert.equal(g.tensors.get('blk.0.attn_norm.weight')!.type, F32);
    assert.equal(g.tensors.get('blk.0.attn_q.weight')!.type, Q8_0);
    assert.deepEqual(g.tensors.get('blk.0.attn_k.weight')!.shape, [32, 64]);
    assert.equal(g.tensors.get('blk.0.ffn_down.weight')!.type, F16, 'rows of 48 are not whole q8_0 blocks');
    assert.equal(g.tensors.size, 1 + 1 + 9);
    // the data: output_norm is stored as-is, in float32
    const norm = g.tensors.get('output_norm.weight')!;
    const stored = new Float32Array(g.bytes.buffer.slice(g.bytes.byteOffset + g.dataStart + norm.offset, g.bytes.byteOffset + g.dataStart + norm.offset + 256));
    assert.deepEqual(Array.from(stored), Array.from(model.param('model.norm.weight')));
    assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.tmp-')), [], 'no temporary file is left');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('gpt2: Conv1D weights as (out, in), fused qkv, position embeddings f32, untied head written', async () => {
  const { dir, model } = await tinyModelDir({ model_type: 'gpt2', vocab_size: 264, n_embd: 32, n_layer: 1, n_head: 2, n_positions: 64, tie_word_embeddings: false });
  try {
    const file = join(dir, 'g.gguf');
    await exportModelFolderToGguf(dir, file, { dtype: 'bf16' });
    const g = readGguf(file);
    assert.equal(g.metadata.get('general.architecture'), 'gpt2');
    assert.equal(g.metadata.get('gpt2.context_length'), 64);
    assert.deepEqual(g.tensors.get('blk.0.attn_qkv.weight'), { ...g.tensors.get('blk.0.attn_qkv.weight')!, shape: [96, 32], type: BF16 });
    assert.deepEqual(g.tensors.get('blk.0.ffn_up.weight')!.shape, [128, 32]);
    assert.deepEqual(g.tensors.get('blk.0.ffn_down.weight')!.shape, [32, 128]);
    assert.equal(g.tensors.get('position_embd.weight')!.type, F32);
    assert.equal(g.tensors.get('output.weight')!.type, BF16);
    assert.equal(g.tensors.get('output_norm.bias')!.type, F32);
    // c_attn's first stored row is row 0 of the internal (out, in) weight: no transpose at export
    const t = g.tensors.get('blk.0.attn_qkv.weight')!;
    const first = g.bytes.readUInt16LE(g.dataStart + t.offset);
    const expected = new Float32Array([model.param('transformer.h.0.attn.c_attn.weight')[0]!]);
    assert.equal(first, new Uint16Array(encodeTensor('BF16', expected, 1).buffer)[0]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the streaming reader gives loadModel\'s parameters, from sharded bf16 folders too (GPT-2 Conv1D transposed)', async (t) => {
  const shared = sharedDir();
  if (shared === null) return t.skip(SHARED_MISSING);
  for (const family of ['llama', 'gpt2']) {
    for (const folder of ['model', 'model-bf16-sharded']) {
      const dir = join(shared, 'fixtures', family, folder);
      const model = await loadModel(dir);
      const read = await folderParamReader(dir, parseConfig(await readConfigJson(dir)));
      for (const p of model.layout) {
        assert.deepEqual(await read(p.name), model.param(p.name), `${family}/${folder}: ${p.name}`);
      }
    }
  }
});

// ------------------------------------------------------------------------------------------------ refusals

test('what llama.cpp cannot compute is refused before anything is written, and an existing file is kept', async () => {
  const { dir } = await tinyModelDir({ ...llamaRaw, model_type: 'qwen2', head_dim: 32 });
  try {
    const file = join(dir, 'q.gguf');
    writeFileSync(file, 'previous');
    await assert.rejects(exportModelFolderToGguf(dir, file), /qwen2 graph needs num_attention_heads \* head_dim/);
    assert.equal(readFileSync(file, 'utf8'), 'previous');
    rmSync(join(dir, 'tokenizer.json'));
    await assert.rejects(exportModelFolderToGguf(dir, join(dir, 'x.gguf')), /qwen2 graph|tokenizer\.json/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const { dir: dir2, model } = await tinyModelDir({ ...llamaRaw, vocab_size: 200 });
  try {
    const files = { ...tinyTokenizerFiles(), origin: 'tiny' };
    await assert.rejects(writeModelGguf(model, files, join(dir2, 'y.gguf')), /token id 260 .* has no row in the model's 200-row embedding/);
    assert.equal(existsSync(join(dir2, 'y.gguf')), false);
    // two ids with one spelling: llama.cpp would abort on load
    const { dir: dir3, model: model3 } = await tinyModelDir(llamaRaw);
    const twice = tinyTokenizerFiles();
    (twice.tokenizer.added_tokens as { id: number; content: string }[]).push({ id: 261, content: 'hi', special: false } as never);
    await assert.rejects(writeModelGguf(model3, { ...twice, origin: 'tiny' }, join(dir3, 'z.gguf')), /tokens 257 and 261 are both spelled "hi"/);
    const stripping = tinyTokenizerFiles();
    (stripping.tokenizer.added_tokens as { lstrip: boolean }[])[0]!.lstrip = true;
    await assert.rejects(writeModelGguf(model3, { ...stripping, origin: 'tiny' }, join(dir3, 'z.gguf')), /"<s>" is matched with lstrip/);
    rmSync(dir3, { recursive: true, force: true });
  } finally {
    rmSync(dir2, { recursive: true, force: true });
  }
});

test('tokenizers llama.cpp would tokenise differently are refused with the reason', () => {
  const base = tinyTokenizerFiles().tokenizer;
  assert.throws(() => classifyTokenizer({ ...base, model: { type: 'Unigram', vocab: [] } }), /only BPE tokenizers/);
  assert.throws(() => classifyTokenizer({
    ...base,
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: '\\w+|\\s+' }, behavior: 'Isolated', invert: false }, { type: 'ByteLevel', add_prefix_space: false, use_regex: false }] },
  }), /not one of the expressions llama\.cpp implements/);
  assert.throws(() => classifyTokenizer({ ...base, pre_tokenizer: { type: 'ByteLevel', add_prefix_space: true, use_regex: true } }), /pre-tokenizer/);
  assert.throws(() => classifyTokenizer({ ...base, normalizer: { type: 'Lowercase' } }), /normalizer Lowercase/);
  assert.throws(() => classifyTokenizer({ ...base, model: { ...(base.model as object), ignore_merges: true } }), /ignore_merges/);
  assert.throws(() => classifyTokenizer({ ...base, model: { type: 'BPE', byte_fallback: true }, normalizer: null, pre_tokenizer: { type: 'Whitespace' } }), /does not behave like SentencePiece/);
  // SentencePiece-style: a pair that concatenates to a token without a merge would be merged by llama.cpp only
  const vocab = new Map([['a', 0], ['b', 1], ['c', 2], ['ab', 3], ['abc', 4], ['bc', 5]]);
  const all = (): boolean => true;
  assert.throws(() => sentencePieceScores(vocab, [['a', 'b'], ['ab', 'c']], all), /"a" \+ "bc" concatenate to the token "abc" but are no merge/);
  assert.deepEqual([...sentencePieceScores(vocab, [['a', 'b'], ['b', 'c'], ['ab', 'c'], ['a', 'bc']], all)], [['ab', -0], ['bc', -1], ['abc', -2]]);
});

// ------------------------------------------------------------------------------------------------ the command

test('orpo export gguf and gguf-lora from the command line', async () => {
  const { dir, model } = await tinyModelDir(llamaRaw);
  try {
    const adapters = attachLora(model, { r: 2, alpha: 4, dropout: 0, targetModules: ['q_proj', 'v_proj'] }, { seed: 1 });
    await saveAdapter(adapters, join(dir, 'adapter'), { baseModelNameOrPath: dir });
    const cli = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
    const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
    const full = run('export', 'gguf', '--model', dir, '--out', join(dir, 'm.gguf'), '--dtype', 'f32', '--adapter', join(dir, 'adapter'));
    assert.equal(full.status, 0, full.stderr);
    assert.match(full.stdout, /wrote .*m\.gguf \(f32, 11 tensors\) with 2 LoRA module\(s\) merged/);
    // the adapter folder alone stands for its base with the adapter merged: the same file
    const fromRun = run('export', 'gguf', '--model', join(dir, 'adapter'), '--out', join(dir, 'm2.gguf'), '--dtype', 'f32');
    assert.equal(fromRun.status, 0, fromRun.stderr);
    assert.ok(readFileSync(join(dir, 'm.gguf')).equals(readFileSync(join(dir, 'm2.gguf'))));
    const lora = run('export', 'gguf-lora', '--adapter', join(dir, 'adapter'), '--out', join(dir, 'a.gguf'));
    assert.equal(lora.status, 0, lora.stderr);
    const g = readGguf(join(dir, 'a.gguf'));
    assert.equal(g.metadata.get('general.type'), 'adapter');
    assert.equal(g.metadata.get('adapter.type'), 'lora');
    assert.equal(g.metadata.get('adapter.lora.alpha'), 4);
    assert.deepEqual([...g.tensors.keys()], ['blk.0.attn_q.weight.lora_a', 'blk.0.attn_q.weight.lora_b', 'blk.0.attn_v.weight.lora_a', 'blk.0.attn_v.weight.lora_b']);
    assert.deepEqual(g.tensors.get('blk.0.attn_q.weight.lora_a')!.shape, [2, 64]);
    assert.deepEqual(g.tensors.get('blk.0.attn_q.weight.lora_b')!.shape, [64, 2]);
    const bad = run('export', 'ggfu');
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /unknown export format 'ggfu' \(did you mean gguf\?\)/);
    const missing = run('export', 'gguf', '--model', dir);
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /missing required option 'out'/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
