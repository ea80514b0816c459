// The safetensors format (https://huggingface.co/docs/safetensors): an 8-byte little-endian u64 N, N bytes of
// UTF-8 JSON `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {str: str}}` with offsets
// relative to the data section that starts at 8 + N, then the data.
//
// Reading trusts nothing: every number in the header is checked against the real file size before it is
// used, so a truncated or corrupt file gives an error naming the file and tensor, never a crash, a hang or a
// huge allocation. The rules are the reference implementation's (huggingface/safetensors, `Metadata::validate`
// and `read_metadata`): the tensors tile the data section exactly, in offset order, from byte 0 to the end of
// the file, with no gap, overlap or trailing byte. Untrusted text is quoted in messages only up to a bound. Tensor data is read with positioned reads, so only the requested tensor's bytes are read
// and offsets beyond 2 GiB work. Writing streams tensor by tensor (no whole-file buffer) and replaces the
// target atomically.

import { open, stat, type FileHandle } from 'node:fs/promises';
import { endianness } from 'node:os';

import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../tensor/dtype.js';
import { replaceFileAtomically } from './atomic-file.js';

export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

/** Bytes per element of each dtype this project reads. */
export const SAFETENSORS_DTYPE_BYTES: Readonly<Record<SafetensorsDtype, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

/** The dtypes writeSafetensors can produce from float32 data. */
export type SafetensorsWriteDtype = 'F32' | 'BF16' | 'F16';

export interface TensorInfo {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  file: string;
  /** absolute byte offset of the data in the file */
  start: number;
  byteLength: number;
}

export interface SafetensorsHeader {
  file: string;
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
}

export interface NamedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

// The reference implementation refuses headers above 100 MB; so do we, before allocating anything.
const MAX_HEADER_BYTES = 100_000_000;
// Parsing a header costs ~100 ns and ~15 bytes of memory per byte (one JSON object per tensor), so a header is
// bounded by the data it describes as well: a real file's header is far below 1/16 of its data (a 7B model's
// ~300 tensors take ~30 KB of header for 14 GB), tiny models fit the fixed allowance, and a 100 MB header of
// 1.7 million empty tensors (10 s and 1.7 GB to parse) is refused before a byte of it is read.
const HEADER_BYTES_ALWAYS_ALLOWED = 1 << 20;
const DATA_BYTES_PER_HEADER_BYTE = 16;
// How much of an untrusted string (tensor name, dtype, value) an error message quotes.
const QUOTE_CHARS = 80;
// Reads and writes move at most this many bytes per call (a multiple of every element size); keeps scratch
// memory small and stays far below the ~2 GiB per-call limit of fs reads/writes.
const CHUNK_BYTES = 16 << 20;
const CORRUPT = 'the file is truncated or corrupt; re-download or re-save it';

function fileError(file: string, message: string): Error {
  return new Error(`${file}: ${message}`);
}

/**
 * Untrusted text for an error message, cut to a bound (a header may hold a 50 MB tensor name) and with control
 * characters escaped so that a message stays one readable line.
 */
export function shortenUntrusted(text: string, maxChars = QUOTE_CHARS): string {
  const cut = text.length > maxChars ? text.slice(0, maxChars) : text;
  const shown = cut.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return text.length > maxChars ? `${shown}... (${text.length} characters)` : shown;
}

/** shortenUntrusted, in quotes. */
export function quoteUntrusted(text: string, maxChars = QUOTE_CHARS): string {
  const cut = text.length > maxChars ? text.slice(0, maxChars) : text;
  const shown = shortenUntrusted(cut, maxChars);
  return text.length > maxChars ? `'${shown}...' (${text.length} characters)` : `'${shown}'`;
}

/**
 * A short description of an untrusted JSON value for an error message: never recursive (JSON.stringify of a
 * deeply nested array overflows the stack) and never longer than about QUOTE_CHARS characters.
 */
export function describeUntrusted(value: unknown): string {
  if (typeof value === 'string') return quoteUntrusted(value);
  if (value === null || typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) {
    const shown: string[] = [];
    let length = 0;
    for (const item of value) {
      const text = Array.isArray(item) ? '[...]' : typeof item === 'object' && item !== null ? '{...}'
        : typeof item === 'string' ? quoteUntrusted(item, 16) : String(item);
      length += text.length + 2;
      if (length > QUOTE_CHARS) break;
      shown.push(text);
    }
    return shown.length < value.length ? `[${shown.join(', ')}, ...] (${value.length} items)` : `[${shown.join(', ')}]`;
  }
  return typeof value === 'object' ? 'an object' : typeof value;
}

// Typed-array views below reinterpret file bytes in host order; the format is little-endian.
function assertLittleEndianHost(): void {
  if (endianness() !== 'LE') throw new Error('safetensors I/O needs a little-endian host');
}

// ------------------------------------------------------------------------------------------------ reading

/** Reads and validates the header of a safetensors file (only the header bytes are read). */
export async function readSafetensorsHeader(file: string): Promise<SafetensorsHeader> {
  const handle = await openForReading(file);
  try {
    const fileSize = (await handle.stat()).size;
    if (fileSize < 8) {
      throw fileError(file, `is ${fileSize} bytes long, shorter than the 8-byte header length: ${CORRUPT}`);
    }
    const lengthBytes = new Uint8Array(8);
    await readExactly(handle, file, lengthBytes, 0);
    const headerLength = new DataView(lengthBytes.buffer).getBigUint64(0, true);
    if (headerLength === 0n) throw fileError(file, `header length is 0: ${CORRUPT}`);
    if (headerLength > BigInt(MAX_HEADER_BYTES)) {
      throw fileError(file, `header length ${headerLength} exceeds the ${MAX_HEADER_BYTES}-byte limit: ` +
        `this is not a safetensors file, or it is corrupt`);
    }
    if (8n + headerLength > BigInt(fileSize)) {
      throw fileError(file, `header length ${headerLength} runs past the end of the ${fileSize}-byte file: ${CORRUPT}`);
    }
    const dataLength = fileSize - 8 - Number(headerLength);
    const allowedHeaderLength = HEADER_BYTES_ALWAYS_ALLOWED + Math.floor(dataLength / DATA_BYTES_PER_HEADER_BYTE);
    if (headerLength > BigInt(allowedHeaderLength)) {
      throw fileError(file, `header length ${headerLength} exceeds what ${dataLength} bytes of tensor data can need ` +
        `(at most ${allowedHeaderLength}: 1 MiB plus 1/${DATA_BYTES_PER_HEADER_BYTE} of the data): ${CORRUPT}`);
    }
    const headerBytes = new Uint8Array(Number(headerLength));
    await readExactly(handle, file, headerBytes, 8);
    return parseHeader(file, headerBytes, fileSize);
  } finally {
    await handle.close();
  }
}

async function openForReading(file: string): Promise<FileHandle> {
  // Checked before opening: opening a named pipe blocks until something writes to it, and a folder opens fine
  // on Linux and fails later with a bare EISDIR. stat follows symlinks, which the Hugging Face cache uses.
  let isFile: boolean;
  try {
    isFile = (await stat(file)).isFile();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw fileError(file, 'no such file');
    throw error;
  }
  if (!isFile) throw fileError(file, 'is not a regular file (a folder, pipe or device?)');
  try {
    return await open(file, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw fileError(file, 'no such file');
    throw error;
  }
}

/** Fills `target` from `position`; a short file is an error, not a silent partial read. */
async function readExactly(handle: FileHandle, file: string, target: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < target.length) {
    const { bytesRead } = await handle.read(target, done, target.length - done, position + done);
    if (bytesRead === 0) {
      throw fileError(file, `ends at byte ${position + done}, expected data up to byte ${position + target.length}: ${CORRUPT}`);
    }
    done += bytesRead;
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function parseHeader(file: string, headerBytes: Uint8Array, fileSize: number): SafetensorsHeader {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (error) {
    // V8's JSON messages quote at most a few characters of the text
    throw fileError(file, `header is not valid UTF-8 JSON (${(error as Error).message}): ${CORRUPT}`);
  }
  if (!isPlainObject(json)) throw fileError(file, `header is not a JSON object: ${CORRUPT}`);

  const dataStart = 8 + headerBytes.length;
  const dataLength = fileSize - dataStart;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  // Object.keys, not Object.entries: one array for the whole header instead of a pair per tensor
  for (const name of Object.keys(json)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(file, json[name]);
      continue;
    }
    tensors.set(name, parseEntry(file, name, json[name], dataStart, dataLength));
  }
  checkTensorsTileData(file, [...tensors.values()], dataStart, dataLength);
  return { file, tensors, metadata };
}

function parseMetadata(file: string, entry: unknown): Record<string, string> {
  if (entry === null) return {}; // the reference reads a null __metadata__ as absent
  if (!isPlainObject(entry)) throw fileError(file, `__metadata__ is not a JSON object of strings: ${CORRUPT}`);
  for (const key of Object.keys(entry)) {
    const value = entry[key];
    if (typeof value !== 'string') {
      throw fileError(file, `__metadata__ value ${quoteUntrusted(key)} is ${describeUntrusted(value)}, not a string: ${CORRUPT}`);
    }
  }
  return entry as Record<string, string>;
}

function parseEntry(file: string, name: string, entry: unknown, dataStart: number, dataLength: number): TensorInfo {
  const where = `tensor ${quoteUntrusted(name)}`;
  if (!isPlainObject(entry)) throw fileError(file, `${where} header entry is not a JSON object: ${CORRUPT}`);
  const { dtype, shape, data_offsets: offsets } = entry;
  if (typeof dtype !== 'string') throw fileError(file, `${where} has no string 'dtype': ${CORRUPT}`);
  if (!Object.hasOwn(SAFETENSORS_DTYPE_BYTES, dtype)) {
    throw fileError(file, `${where} has dtype ${quoteUntrusted(dtype)}, which is not supported ` +
      `(supported: ${Object.keys(SAFETENSORS_DTYPE_BYTES).join(', ')}); convert the model to float32, bfloat16 or float16`);
  }
  const elementBytes = SAFETENSORS_DTYPE_BYTES[dtype as SafetensorsDtype];
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    throw fileError(file, `${where} shape ${describeUntrusted(shape)} is not a list of non-negative integers: ${CORRUPT}`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) || offsets[0] > offsets[1]) {
    throw fileError(file, `${where} data_offsets ${describeUntrusted(offsets)} are not two non-negative integers ` +
      `[begin, end] with begin <= end: ${CORRUPT}`);
  }
  const [begin, end] = offsets as [number, number];
  if (end > dataLength) {
    throw fileError(file, `${where} data_offsets [${begin}, ${end}] do not fit the ${dataLength}-byte data section: ${CORRUPT}`);
  }
  const numel = elementCount(shape);
  if (numel === null) {
    throw fileError(file, `${where} shape ${describeUntrusted(shape)} needs more than 2^64 elements, which the ` +
      `reference implementation refuses as an overflow: ${CORRUPT}`);
  }
  // Exact while numel * elementBytes <= 2^53; beyond that the product exceeds every possible span anyway.
  const needed = numel * elementBytes;
  if (needed !== end - begin) {
    const shown = shape.length > 8 ? describeUntrusted(shape) : `[${shape.join(', ')}]`;
    const bytes = needed > Number.MAX_SAFE_INTEGER ? 'more than 2^53' : String(needed);
    throw fileError(file, `${where} shape ${shown} of ${dtype} needs ${bytes} bytes but data_offsets ` +
      `[${begin}, ${end}] span ${end - begin}: ${CORRUPT}`);
  }
  return { name, dtype: dtype as SafetensorsDtype, shape: [...shape], file, start: dataStart + begin, byteLength: end - begin };
}

/**
 * The number of elements of a shape, or null when a running product passes 2^64 (the reference's checked_mul on
 * usize). Floats, not BigInt: a header may hold a shape of a million large dims, whose exact product would cost
 * quadratic time. Exact up to 2^53, which is all a file can hold; above that only "too big" matters.
 */
function elementCount(shape: readonly number[]): number | null {
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (n >= 2 ** 64) return null;
  }
  return n;
}

/**
 * The reference implementation's layout rule: sorted by (begin, end), each tensor starts where the previous one
 * ends, the first at 0, and the last ends at the end of the file. A gap or trailing bytes would be data no tensor
 * owns (a file spliced or padded by something that is not a safetensors writer); an overlap, including an
 * empty tensor placed inside another, would let two names alias the same bytes.
 */
function checkTensorsTileData(file: string, infos: TensorInfo[], dataStart: number, dataLength: number): void {
  const sorted = infos.sort((a, b) => a.start - b.start || a.byteLength - b.byteLength);
  let covered = 0; // bytes of the data section owned by the tensors so far
  let previous: TensorInfo | null = null;
  for (const info of sorted) {
    const begin = info.start - dataStart;
    if (begin > covered) {
      throw fileError(file, `bytes ${covered} to ${begin} of the data section belong to no tensor (a gap before tensor ` +
        `${quoteUntrusted(info.name)}); the reference implementation refuses such files: ${CORRUPT}`);
    }
    if (begin < covered) {
      throw fileError(file, `tensors ${quoteUntrusted(previous!.name)} and ${quoteUntrusted(info.name)} overlap in the ` +
        `data section: ${CORRUPT}`);
    }
    covered = begin + info.byteLength;
    previous = info;
  }
  if (covered !== dataLength) {
    const after = previous === null ? 'the header lists no tensor' : `after tensor ${quoteUntrusted(previous.name)}`;
    throw fileError(file, `the last ${dataLength - covered} bytes of the file belong to no tensor (${after}); ` +
      `the reference implementation refuses such files: ${CORRUPT}`);
  }
}

/**
 * Reads one tensor and converts it to float32 (every SafetensorsDtype; F64 and I64 round to the nearest
 * float32, BOOL gives 0/1). Positioned reads, so files over 2 GiB work and only this tensor's bytes are read.
 * `out` (exactly numel elements) lets the caller read straight into a view of a flat parameter buffer.
 */
export async function readTensorF32(info: TensorInfo, out?: Float32Array): Promise<Float32Array> {
  assertLittleEndianHost();
  const elementBytes = SAFETENSORS_DTYPE_BYTES[info.dtype];
  const numel = info.byteLength / elementBytes;
  if (out !== undefined && out.length !== numel) {
    throw new RangeError(`${info.file}: tensor ${quoteUntrusted(info.name)} has ${numel} elements ` +
      `(shape [${info.shape.join(', ')}]) but the output buffer has ${out.length}`);
  }
  const result = out ?? new Float32Array(numel);
  const handle = await openForReading(info.file);
  try {
    if (info.dtype === 'F32') {
      // already the right representation: read straight into the caller's memory
      const bytes = new Uint8Array(result.buffer, result.byteOffset, info.byteLength);
      for (let done = 0; done < bytes.length; done += CHUNK_BYTES) {
        await readExactly(handle, info.file, bytes.subarray(done, done + CHUNK_BYTES), info.start + done);
      }
      return result;
    }
    // own ArrayBuffer (not a pooled Buffer) so that 2- and 8-byte element views are aligned
    const scratch = new Uint8Array(Math.min(CHUNK_BYTES, info.byteLength));
    for (let done = 0; done < info.byteLength; done += scratch.length) {
      const bytes = scratch.subarray(0, Math.min(scratch.length, info.byteLength - done));
      await readExactly(handle, info.file, bytes, info.start + done);
      const first = done / elementBytes;
      convertToF32(info.dtype, bytes, result.subarray(first, first + bytes.length / elementBytes));
    }
    return result;
  } finally {
    await handle.close();
  }
}

// bytes (numel * size of dtype), 8-byte aligned -> out (numel)
function convertToF32(dtype: SafetensorsDtype, bytes: Uint8Array, out: Float32Array): void {
  const { buffer, byteOffset } = bytes;
  const n = out.length;
  switch (dtype) {
    case 'F32': out.set(new Float32Array(buffer, byteOffset, n)); return;
    case 'BF16': bf16ToF32(new Uint16Array(buffer, byteOffset, n), out); return;
    case 'F16': f16ToF32(new Uint16Array(buffer, byteOffset, n), out); return;
    case 'F64': out.set(new Float64Array(buffer, byteOffset, n)); return;
    case 'I64': {
      const values = new BigInt64Array(buffer, byteOffset, n);
      for (let i = 0; i < n; i++) out[i] = Number(values[i]!);
      return;
    }
    case 'I32': out.set(new Int32Array(buffer, byteOffset, n)); return;
    case 'I16': out.set(new Int16Array(buffer, byteOffset, n)); return;
    case 'I8': out.set(new Int8Array(buffer, byteOffset, n)); return;
    case 'U8': out.set(bytes.subarray(0, n)); return;
    case 'BOOL': for (let i = 0; i < n; i++) out[i] = bytes[i] === 0 ? 0 : 1; return;
  }
}

// ------------------------------------------------------------------------------------------------ writing

/** The number of elements a shape describes; rejects shapes that are not lists of non-negative integers. */
function shapeNumel(where: string, shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!isCount(d)) throw new Error(`${where}: shape [${shape.join(', ')}] is not a list of non-negative integers`);
    n *= d;
  }
  return n;
}

/**
 * Writes one safetensors file: tensors sorted by name, header padded with spaces to a multiple of 8 bytes,
 * `__metadata__` = {"format": "pt", ...opts.metadata} (transformers refuses files without a known format),
 * data in `opts.dtype` (default F32; BF16/F16 round to nearest even). Streams tensor by tensor and replaces
 * `file` atomically.
 */
export async function writeSafetensors(
  file: string,
  tensors: NamedTensor[],
  opts: { dtype?: SafetensorsWriteDtype; metadata?: Record<string, string> } = {},
): Promise<void> {
  assertLittleEndianHost();
  const dtype = opts.dtype ?? 'F32';
  const elementBytes = SAFETENSORS_DTYPE_BYTES[dtype];
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

  // The header is assembled as text in our own order: a JS object would move integer-like names first.
  const entries: string[] = [];
  let offset = 0;
  for (let i = 0; i < sorted.length; i++) {
    const { name, shape, data } = sorted[i]!;
    const where = `${file}: tensor '${name}'`;
    if (name === '__metadata__') throw new Error(`${where}: this name is reserved by the format`);
    if (i > 0 && sorted[i - 1]!.name === name) throw new Error(`${where}: the name appears twice`);
    const numel = shapeNumel(where, shape);
    if (numel !== data.length) {
      throw new Error(`${where}: shape [${shape.join(', ')}] has ${numel} elements but the data has ${data.length}`);
    }
    const end = offset + numel * elementBytes;
    entries.push(`${JSON.stringify(name)}:${JSON.stringify({ dtype, shape, data_offsets: [offset, end] })}`);
    offset = end;
  }
  // last, as in the shared fixtures' files, so that re-saving them reproduces them byte for byte
  entries.push(`"__metadata__":${JSON.stringify({ format: 'pt', ...opts.metadata })}`);
  const json = new TextEncoder().encode(`{${entries.join(',')}}`);
  const headerLength = Math.ceil(json.length / 8) * 8;
  if (headerLength > MAX_HEADER_BYTES) {
    throw new Error(`${file}: the header would be ${headerLength} bytes, over the ${MAX_HEADER_BYTES}-byte limit of the format`);
  }
  const head = new Uint8Array(8 + headerLength).fill(0x20); // the spec pads with spaces
  new DataView(head.buffer).setBigUint64(0, BigInt(headerLength), true);
  head.set(json, 8);

  await replaceFileAtomically(file, async (handle) => {
    let position = 0;
    const put = async (bytes: Uint8Array): Promise<void> => {
      await writeExactly(handle, bytes, position);
      position += bytes.length;
    };
    await put(head);
    const chunkElements = CHUNK_BYTES / elementBytes;
    const scratch = new Uint16Array(dtype === 'F32' ? 0 : chunkElements);
    for (const { data } of sorted) {
      for (let first = 0; first < data.length; first += chunkElements) {
        const chunk = data.subarray(first, first + chunkElements);
        if (dtype === 'F32') {
          await put(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          continue;
        }
        const bits = scratch.subarray(0, chunk.length);
        if (dtype === 'BF16') f32ToBf16(chunk, bits);
        else f32ToF16(chunk, bits);
        await put(new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength));
      }
    }
  });
}

async function writeExactly(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done);
    done += bytesWritten;
  }
}
