// The GGUF container (version 3, as ggml's gguf.cpp reads it), encoded without a file system: little-endian
//   magic "GGUF", u32 version, u64 tensor count, u64 metadata count,
//   metadata: (string key, u32 value type, value)*,
//   tensor infos: (string name, u32 n_dims, u64 ne[n_dims] innermost first, u32 ggml type, u64 offset)*,
//   zero padding to `general.alignment` (32), then every tensor's data, each starting on an aligned offset.
// Strings are a u64 byte length and UTF-8 bytes. Tensors are produced, encoded and handed to a sink one at a time,
// so a model never needs a second full copy in memory: format.ts's sink writes a file (atomically, on Node),
// ggufBytes's fills one array (what the page downloads). Both get the same bytes at the same positions.

import { encodeTensor, ggmlTypeSize, type GgmlType } from './quantize.js';

export const GGUF_VERSION = 3;
export const GGUF_ALIGNMENT = 32;

/** gguf_type, the tag before every metadata value (the ones this writer uses). */
const GgufValueType = { Uint32: 4, Int32: 5, Float32: 6, Bool: 7, String: 8, Array: 9 } as const;

/** One metadata value, typed as llama.cpp expects to read it (it checks the stored type). */
export type GgufValue =
  | { type: 'u32'; value: number }
  | { type: 'i32'; value: number }
  | { type: 'f32'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'string[]'; value: readonly string[] }
  | { type: 'i32[]'; value: ArrayLike<number> }
  | { type: 'f32[]'; value: ArrayLike<number> };

export type GgufMetadata = Map<string, GgufValue>;

/** One tensor to write: its GGUF name, its shape outermost first (as numpy/PyTorch print it), its stored type. */
export interface GgufTensorPlan {
  name: string;
  shape: readonly number[];
  type: GgmlType;
  /** produces the float32 values in row-major order, called once, just before the tensor is written */
  data: () => Float32Array | Promise<Float32Array>;
}

// ------------------------------------------------------------------------------------------------ encoding

/** A growable little-endian byte buffer for the header (metadata can be megabytes: a 150k-token vocabulary). */
class ByteSink {
  private bytes = new Uint8Array(1 << 16);
  private view = new DataView(this.bytes.buffer);
  length = 0;
  private static readonly utf8 = new TextEncoder();

  private reserve(n: number): void {
    if (this.length + n <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < this.length + n) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.bytes.subarray(0, this.length));
    this.bytes = grown;
    this.view = new DataView(grown.buffer);
  }

  u8(v: number): void { this.reserve(1); this.view.setUint8(this.length, v); this.length += 1; }
  u32(v: number): void { this.reserve(4); this.view.setUint32(this.length, v, true); this.length += 4; }
  i32(v: number): void { this.reserve(4); this.view.setInt32(this.length, v, true); this.length += 4; }
  f32(v: number): void { this.reserve(4); this.view.setFloat32(this.length, v, true); this.length += 4; }
  u64(v: number): void { this.reserve(8); this.view.setBigUint64(this.length, BigInt(v), true); this.length += 8; }

  string(s: string): void {
    const encoded = ByteSink.utf8.encode(s);
    this.u64(encoded.length);
    this.reserve(encoded.length);
    this.bytes.set(encoded, this.length);
    this.length += encoded.length;
  }

  padTo(alignment: number): void {
    const pad = (alignment - (this.length % alignment)) % alignment;
    this.reserve(pad);
    this.bytes.fill(0, this.length, this.length + pad);
    this.length += pad;
  }

  result(): Uint8Array {
    return this.bytes.subarray(0, this.length);
  }
}

function writeValue(sink: ByteSink, key: string, v: GgufValue): void {
  const checkInt = (x: number, lo: number, hi: number): number => {
    if (!Number.isInteger(x) || x < lo || x > hi) throw new Error(`GGUF metadata '${key}': ${x} is not an integer in [${lo}, ${hi}]`);
    return x;
  };
  switch (v.type) {
    case 'u32': sink.u32(GgufValueType.Uint32); sink.u32(checkInt(v.value, 0, 0xffffffff)); return;
    case 'i32': sink.u32(GgufValueType.Int32); sink.i32(checkInt(v.value, -0x80000000, 0x7fffffff)); return;
    case 'f32': sink.u32(GgufValueType.Float32); sink.f32(v.value); return;
    case 'bool': sink.u32(GgufValueType.Bool); sink.u8(v.value ? 1 : 0); return;
    case 'string': sink.u32(GgufValueType.String); sink.string(v.value); return;
    case 'string[]':
      sink.u32(GgufValueType.Array); sink.u32(GgufValueType.String); sink.u64(v.value.length);
      for (const s of v.value) sink.string(s);
      return;
    case 'i32[]':
      sink.u32(GgufValueType.Array); sink.u32(GgufValueType.Int32); sink.u64(v.value.length);
      for (let i = 0; i < v.value.length; i++) sink.i32(checkInt(v.value[i]!, -0x80000000, 0x7fffffff));
      return;
    case 'f32[]':
      sink.u32(GgufValueType.Array); sink.u32(GgufValueType.Float32); sink.u64(v.value.length);
      for (let i = 0; i < v.value.length; i++) sink.f32(v.value[i]!);
      return;
  }
}

/** Bytes a tensor of this shape and type occupies (quantised rows are whole blocks). */
export function tensorByteSize(name: string, shape: readonly number[], type: GgmlType): number {
  const { blockElements, blockBytes } = ggmlTypeSize(type);
  const rowLength = shape[shape.length - 1] ?? 1;
  if (rowLength % blockElements !== 0) {
    throw new Error(`tensor '${name}': rows of ${rowLength} cannot be stored as ${type} (blocks of ${blockElements})`);
  }
  const count = shape.reduce((n, d) => n * d, 1);
  return (count / blockElements) * blockBytes;
}

/** The header: magic, counts, metadata, tensor infos, padding. Returns it with each tensor's data offset. */
export function encodeGgufHeader(metadata: GgufMetadata, tensors: readonly GgufTensorPlan[]): { header: Uint8Array; offsets: number[]; sizes: number[] } {
  const sink = new ByteSink();
  sink.u32(0x46554747); // "GGUF" read as a little-endian u32
  sink.u32(GGUF_VERSION);
  sink.u64(tensors.length);
  sink.u64(metadata.size);
  for (const [key, value] of metadata) {
    sink.string(key);
    writeValue(sink, key, value);
  }
  const offsets: number[] = [];
  const sizes: number[] = [];
  const seen = new Set<string>();
  let offset = 0;
  for (const t of tensors) {
    if (seen.has(t.name)) throw new Error(`GGUF tensor '${t.name}' appears twice`);
    seen.add(t.name);
    if (new TextEncoder().encode(t.name).length >= 64) throw new Error(`GGUF tensor name '${t.name}' is longer than ggml's 63 bytes`);
    const size = tensorByteSize(t.name, t.shape, t.type);
    sink.string(t.name);
    sink.u32(t.shape.length);
    // ggml's ne[] lists the innermost (contiguous) dimension first
    for (let d = t.shape.length - 1; d >= 0; d--) sink.u64(t.shape[d]!);
    sink.u32(ggmlTypeSize(t.type).id);
    sink.u64(offset);
    offsets.push(offset);
    sizes.push(size);
    offset += Math.ceil(size / GGUF_ALIGNMENT) * GGUF_ALIGNMENT;
  }
  sink.padTo(GGUF_ALIGNMENT);
  return { header: sink.result(), offsets, sizes };
}

/** Where the encoded pieces go: `bytes` belongs at byte `position` of the file. */
export interface GgufSink {
  write(bytes: Uint8Array, position: number): void | Promise<void>;
}

// Typed-array views encode tensors in host order; GGUF is little-endian
function assertLittleEndianHost(): void {
  if (new Uint8Array(Uint16Array.of(1).buffer)[0] !== 1) throw new Error('GGUF export needs a little-endian host');
}

/**
 * Writes a GGUF file into a sink: the header, then each tensor's data produced, encoded and written in turn (only
 * one tensor's encoded bytes exist at a time), then zeros to the aligned end. Returns the file's size.
 */
export async function writeGgufTo(sink: GgufSink, metadata: GgufMetadata, tensors: readonly GgufTensorPlan[]): Promise<number> {
  assertLittleEndianHost();
  const { header, offsets, sizes } = encodeGgufHeader(metadata, tensors);
  await sink.write(header, 0);
  let end = header.length;
  for (let i = 0; i < tensors.length; i++) {
    const t = tensors[i]!;
    const values = await t.data();
    const count = t.shape.reduce((n, d) => n * d, 1);
    if (values.length !== count) {
      throw new Error(`GGUF tensor '${t.name}': shape [${t.shape.join(', ')}] has ${count} elements but the data has ${values.length}`);
    }
    const bytes = encodeTensor(t.type, values, t.shape[t.shape.length - 1] ?? 1);
    if (bytes.length !== sizes[i]) throw new Error(`GGUF tensor '${t.name}': encoded ${bytes.length} bytes, expected ${sizes[i]}`);
    const position = header.length + offsets[i]!;
    await sink.write(bytes, position);
    end = position + bytes.length;
  }
  // the data section ends on an aligned size too, as ggml writes it
  const padded = Math.ceil((end - header.length) / GGUF_ALIGNMENT) * GGUF_ALIGNMENT + header.length;
  if (padded > end) await sink.write(new Uint8Array(padded - end), end);
  return padded;
}

/** A whole GGUF file as bytes (the page's download; a model of the page's size fits in memory twice). */
export async function ggufBytes(metadata: GgufMetadata, tensors: readonly GgufTensorPlan[]): Promise<Uint8Array> {
  const { header, offsets, sizes } = encodeGgufHeader(metadata, tensors);
  const last = tensors.length - 1;
  const size = header.length + (last < 0 ? 0 : offsets[last]! + Math.ceil(sizes[last]! / GGUF_ALIGNMENT) * GGUF_ALIGNMENT);
  const out = new Uint8Array(size);
  const written = await writeGgufTo({ write: (bytes, position) => out.set(bytes, position) }, metadata, tensors);
  if (written !== size) throw new Error(`GGUF: wrote ${written} bytes where the header plans ${size}`);
  return out;
}
