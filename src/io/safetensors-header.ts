// The header of a safetensors file, validated without touching the file system (so a page holding a file's
// bytes can use it as well as the file reader, src/io/safetensors.ts): an 8-byte little-endian u64 N, N bytes of
// UTF-8 JSON `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {str: str}}` with offsets
// relative to the data section that starts at 8 + N.
//
// The rules are the reference implementation's (huggingface/safetensors, `read_metadata` and `Metadata::validate`
// in safetensors/src/tensor.rs): a header of at most 100 MB, a known dtype, shape x dtype size = the byte span
// (with an overflow check), and the tensors tile the data section exactly, in offset order, from byte 0 to the end
// of the file, with no gap, overlap or trailing byte. Beyond the reference, the header's size is bounded by the
// data it describes (parsing cost), and untrusted text is quoted in messages only up to a bound.

export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

/** Bytes per element of each dtype this project reads. */
export const SAFETENSORS_DTYPE_BYTES: Readonly<Record<SafetensorsDtype, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

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

// The reference implementation refuses headers above 100 MB; so do we, before allocating anything.
export const MAX_HEADER_BYTES = 100_000_000;
// Parsing a header costs ~100 ns and ~15 bytes of memory per byte (one JSON object per tensor), about what
// reading 100 bytes of tensor data costs in time, so a header may be at most 1/128 of the data it describes (plus
// a fixed allowance): parsing then never takes longer than reading the data would. A real file's header is far
// smaller (a 7B model's ~300 tensors take ~30 KB for 14 GB; tiny test models fit the allowance), and a 100 MB
// header of 1.7 million empty tensors (10 s and 1.7 GB to parse) is refused before a byte of it is read.
const HEADER_BYTES_ALWAYS_ALLOWED = 1 << 20;
const DATA_BYTES_PER_HEADER_BYTE = 128;
// How much of an untrusted string (tensor name, dtype, value) an error message quotes.
const QUOTE_CHARS = 80;
export const CORRUPT = 'the file is truncated or corrupt; re-download or re-save it';

function fileError(file: string, message: string): Error {
  return new Error(`${file}: ${message}`);
}

/** At most maxChars of untrusted text, with control characters escaped so that a message stays one line. */
function escapedStart(text: string, maxChars: number): string {
  return text.slice(0, maxChars).replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/**
 * Untrusted text for an error message, cut to a bound (a header may hold a 50 MB tensor name) and escaped:
 * `name` or `nnnn... (5000000 characters)`.
 */
export function shortenUntrusted(text: string, maxChars = QUOTE_CHARS): string {
  const shown = escapedStart(text, maxChars);
  return text.length > maxChars ? `${shown}... (${text.length} characters)` : shown;
}

/** shortenUntrusted in quotes: `'name'` or `'nnnn...' (5000000 characters)`. */
export function quoteUntrusted(text: string, maxChars = QUOTE_CHARS): string {
  const shown = escapedStart(text, maxChars);
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

/**
 * The header length from the 8-byte length field, checked before a byte of the header is read: not 0, at most
 * the reference's 100 MB, inside the file, and no larger than the data it describes can need.
 */
export function checkHeaderLength(file: string, lengthField: Uint8Array, fileSize: number): number {
  const headerLength = new DataView(lengthField.buffer, lengthField.byteOffset, 8).getBigUint64(0, true);
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
  return Number(headerLength);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/**
 * Validates a header's JSON (headerBytes, the N bytes after the length field) against the file's size, by the
 * reference implementation's rules, and returns its tensors with absolute offsets.
 */
export function parseSafetensorsHeader(file: string, headerBytes: Uint8Array, fileSize: number): SafetensorsHeader {
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
  // built only for a message: quoting escapes the name, which costs per tensor in a header of a million
  const where = (): string => `tensor ${quoteUntrusted(name)}`;
  if (!isPlainObject(entry)) throw fileError(file, `${where()} header entry is not a JSON object: ${CORRUPT}`);
  const { dtype, shape, data_offsets: offsets } = entry;
  if (typeof dtype !== 'string') throw fileError(file, `${where()} has no string 'dtype': ${CORRUPT}`);
  if (!Object.hasOwn(SAFETENSORS_DTYPE_BYTES, dtype)) {
    throw fileError(file, `${where()} has dtype ${quoteUntrusted(dtype)}, which is not supported ` +
      `(supported: ${Object.keys(SAFETENSORS_DTYPE_BYTES).join(', ')}); convert the model to float32, bfloat16 or float16`);
  }
  const elementBytes = SAFETENSORS_DTYPE_BYTES[dtype as SafetensorsDtype];
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    throw fileError(file, `${where()} shape ${describeUntrusted(shape)} is not a list of non-negative integers: ${CORRUPT}`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) || offsets[0] > offsets[1]) {
    throw fileError(file, `${where()} data_offsets ${describeUntrusted(offsets)} are not two non-negative integers ` +
      `[begin, end] with begin <= end: ${CORRUPT}`);
  }
  const [begin, end] = offsets as [number, number];
  if (end > dataLength) {
    throw fileError(file, `${where()} data_offsets [${begin}, ${end}] do not fit the ${dataLength}-byte data section: ${CORRUPT}`);
  }
  const numel = elementCount(shape);
  if (numel === null) {
    throw fileError(file, `${where()} shape ${describeUntrusted(shape)} needs more than 2^64 elements, which the ` +
      `reference implementation refuses as an overflow: ${CORRUPT}`);
  }
  // Exact while numel * elementBytes <= 2^53; beyond that the product exceeds every possible span anyway.
  const needed = numel * elementBytes;
  if (needed !== end - begin) {
    const shown = shape.length > 8 ? describeUntrusted(shape) : `[${shape.join(', ')}]`;
    const bytes = needed > Number.MAX_SAFE_INTEGER ? 'more than 2^53' : String(needed);
    throw fileError(file, `${where()} shape ${shown} of ${dtype} needs ${bytes} bytes but data_offsets ` +
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

