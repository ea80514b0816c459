// Hugging Face model folders as bytes, for places with no file system (a web page): the files' contents in
// (config.json and model.safetensors, or model.safetensors.index.json with its shards; F32, F16 or BF16), a model
// out; and a model back to the bytes of a folder transformers loads (config.json + model.safetensors).
//
// The same checks as over files, from the same pure modules: safetensors-header.ts validates each file's header by
// the reference implementation's rules, weight-match.ts matches the tensors to the parameters the config implies
// before anything is allocated.

import type { Kernels } from '../backend/kernels.js';
import type { DecoderBase } from '../model/base.js';
import { parseConfig } from '../model/config.js';
import { emptyModel } from '../model/create.js';
import { canonicalName, hfLayoutTensors, paramLayout, transpose2d } from '../model/layout.js';
import type { ModelConfig, ParamSpec } from '../model/types.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../tensor/dtype.js';
import { checkHeaderLength, CORRUPT, parseSafetensorsHeader, quoteUntrusted } from './safetensors-header.js';
import { matchWeights } from './weight-match.js';

/** A model folder's files by plain file name (config.json, model.safetensors, tokenizer.json, ...). */
export type FolderBytes = ReadonlyMap<string, Uint8Array>;

/** The dtypes model weights come in here; the others (I64, BOOL...) are buffers no supported model stores. */
export type WeightDtype = 'F32' | 'F16' | 'BF16';
const ELEMENT_BYTES: Readonly<Record<WeightDtype, number>> = { F32: 4, F16: 2, BF16: 2 };

export interface BytesTensor {
  name: string;
  dtype: WeightDtype;
  shape: number[];
  file: string;
  /** the tensor's data bytes, a view into the file's bytes */
  data: Uint8Array;
}

const SINGLE_WEIGHTS_FILE = 'model.safetensors';
const WEIGHTS_INDEX_FILE = 'model.safetensors.index.json';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function assertLittleEndianHost(): void {
  // typed-array views reinterpret file bytes in host order; the format is little-endian
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('safetensors needs a little-endian host');
}

/**
 * The tensors of one safetensors file's bytes, validated by the very rules the file reader applies
 * (safetensors-header.ts: the reference's layout rules, the header's size bounded by its data, bounded quoting).
 */
export function parseSafetensorsBytes(file: string, bytes: Uint8Array): Map<string, BytesTensor> {
  if (bytes.length < 8) throw new Error(`${file}: is ${bytes.length} bytes long, shorter than the 8-byte header length: ${CORRUPT}`);
  const headerLength = checkHeaderLength(file, bytes.subarray(0, 8), bytes.length);
  const header = parseSafetensorsHeader(file, bytes.subarray(8, 8 + headerLength), bytes.length);
  const tensors = new Map<string, BytesTensor>();
  for (const info of header.tensors.values()) {
    const { dtype } = info;
    if (dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16') {
      throw new Error(`${file}: tensor ${quoteUntrusted(info.name)} has dtype ${dtype}; model weights must be F32, F16 or BF16`);
    }
    tensors.set(info.name, { name: info.name, dtype, shape: info.shape, file, data: bytes.subarray(info.start, info.start + info.byteLength) });
  }
  return tensors;
}

/** The tensor as float32, converted from its dtype into `out` (exactly its element count). */
export function tensorToF32(tensor: BytesTensor, out: Float32Array): void {
  assertLittleEndianHost();
  const n = out.length;
  // a typed-array view needs its element alignment; safetensors data is only as aligned as its header length
  const aligned = tensor.data.byteOffset % 4 === 0 ? tensor.data : tensor.data.slice();
  if (tensor.dtype === 'F32') out.set(new Float32Array(aligned.buffer, aligned.byteOffset, n));
  else {
    const bits = new Uint16Array(aligned.buffer, aligned.byteOffset, n);
    if (tensor.dtype === 'BF16') bf16ToF32(bits, out);
    else f16ToF32(bits, out);
  }
}

function requireFile(files: FolderBytes, name: string, why: string): Uint8Array {
  const bytes = files.get(name);
  if (bytes === undefined) throw new Error(`the model folder has no ${name}: ${why} (given: ${[...files.keys()].sort().join(', ') || 'nothing'})`);
  return bytes;
}

function parseJsonFile(name: string, bytes: Uint8Array): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    throw new Error(`${name}: invalid JSON (${(error as Error).message})`);
  }
  if (!isObject(value)) throw new Error(`${name}: not a JSON object`);
  return value;
}

/** Every weight tensor of the folder: model.safetensors, or the shards model.safetensors.index.json lists. */
export function folderTensors(files: FolderBytes): Map<string, BytesTensor> {
  const single = files.get(SINGLE_WEIGHTS_FILE);
  if (single !== undefined) return parseSafetensorsBytes(SINGLE_WEIGHTS_FILE, single);
  const index = parseJsonFile(WEIGHTS_INDEX_FILE, requireFile(files, WEIGHTS_INDEX_FILE,
    `weights come as ${SINGLE_WEIGHTS_FILE} or as shards listed in ${WEIGHTS_INDEX_FILE} (PyTorch .bin files are not read)`));
  const weightMap = index.weight_map;
  if (!isObject(weightMap)) throw new Error(`${WEIGHTS_INDEX_FILE}: has no "weight_map" object; re-download or re-save the model`);
  const tensors = new Map<string, BytesTensor>();
  const shards = [...new Set(Object.values(weightMap))].map(String).sort();
  for (const shard of shards) {
    for (const [name, tensor] of parseSafetensorsBytes(shard, requireFile(files, shard, `${WEIGHTS_INDEX_FILE} lists it`))) {
      if (tensors.has(name)) throw new Error(`tensor ${quoteUntrusted(name)} is in two shards (${tensors.get(name)!.file} and ${shard}); re-save the model`);
      tensors.set(name, tensor);
    }
  }
  for (const [name, shard] of Object.entries(weightMap)) {
    if (tensors.get(name)?.file !== shard) throw new Error(`${WEIGHTS_INDEX_FILE}: tensor ${quoteUntrusted(name)} is listed in ${String(shard)} but that shard does not hold it`);
  }
  return tensors;
}


/** A model from the bytes of its folder (config.json + safetensors, single or sharded). */
export function modelFromFolderBytes(files: FolderBytes, opts: { kernels?: Kernels } = {}): DecoderBase {
  const config = parseConfig(parseJsonFile('config.json', requireFile(files, 'config.json', 'it holds the architecture')), 'config.json');
  const matched = matchWeights('the model folder', 'config.json', config, folderTensors(files));
  const model = emptyModel(config, opts.kernels);
  for (const [spec, tensor] of matched) {
    const view = model.param(spec.name);
    if (!spec.transposed) {
      tensorToF32(tensor, view);
      continue;
    }
    const hf = new Float32Array(spec.size);
    tensorToF32(tensor, hf);
    transpose2d(view, hf, spec.hfShape[0]!, spec.hfShape[1]!);
  }
  for (const spec of model.layout) {
    if (!model.param(spec.name).every(Number.isFinite)) throw new Error(`parameter '${spec.name}' holds NaN or Inf; the checkpoint is corrupt`);
  }
  return model;
}

/**
 * One safetensors file's bytes, laid out as src/io/safetensors.ts's writeSafetensors writes it: tensors sorted by
 * name, `__metadata__` {"format": "pt"} last, the header padded with spaces to a multiple of 8 bytes.
 */
export function safetensorsBytes(tensors: readonly { name: string; shape: number[]; data: Float32Array }[], dtype: WeightDtype = 'F32'): Uint8Array {
  assertLittleEndianHost();
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const elementBytes = ELEMENT_BYTES[dtype];
  const entries: string[] = [];
  let offset = 0;
  for (const { name, shape, data } of sorted) {
    const end = offset + data.length * elementBytes;
    entries.push(`${JSON.stringify(name)}:${JSON.stringify({ dtype, shape, data_offsets: [offset, end] })}`);
    offset = end;
  }
  entries.push(`"__metadata__":${JSON.stringify({ format: 'pt' })}`);
  const json = new TextEncoder().encode(`{${entries.join(',')}}`);
  const headerLength = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerLength + offset);
  out.fill(0x20, 8, 8 + headerLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  let at = 8 + headerLength;
  for (const { data } of sorted) {
    const bytes = dtype === 'F32' ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
      : new Uint8Array((dtype === 'BF16' ? f32ToBf16(data) : f32ToF16(data)).buffer);
    out.set(bytes, at);
    at += bytes.length;
  }
  return out;
}

/** config.json + model.safetensors of a model, as saveModel writes them (one file: a page's models are small). */
export function modelFolderBytes(model: DecoderBase, opts: { dtype?: 'F32' | 'BF16' } = {}): Map<string, Uint8Array> {
  const dtype = opts.dtype ?? 'F32';
  const config = { ...model.config.raw, torch_dtype: dtype === 'BF16' ? 'bfloat16' : 'float32' };
  return new Map([
    ['config.json', new TextEncoder().encode(`${JSON.stringify(config, null, 2)}\n`)],
    [SINGLE_WEIGHTS_FILE, safetensorsBytes(hfLayoutTensors(model.layout, model.params), dtype)],
  ]);
}
