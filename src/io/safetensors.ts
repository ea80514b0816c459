// The safetensors format (https://huggingface.co/docs/safetensors): an 8-byte little-endian u64 N, N bytes of
// UTF-8 JSON `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {str: str}}` with offsets
// relative to the data section that starts at 8 + N, then the data.
//
// Reading trusts nothing: the header is validated by safetensors-header.ts (the reference implementation's
// rules, against the real file size) before any of its numbers is used, so a truncated or corrupt file gives an
// error naming the file and tensor, never a crash, a hang or a huge allocation. A path that is not a regular file
// is refused before it is opened. Tensor data is read with positioned reads, so only the requested tensor's
// bytes are read and offsets beyond 2 GiB work. Writing streams tensor by tensor (no whole-file buffer) and replaces the
// target atomically.

import { open, stat, type FileHandle } from 'node:fs/promises';
import { endianness } from 'node:os';

import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../tensor/dtype.js';
import { replaceFileAtomically } from './atomic-file.js';
import {
  checkHeaderLength, CORRUPT, isCount, MAX_HEADER_BYTES, parseSafetensorsHeader, quoteUntrusted, SAFETENSORS_DTYPE_BYTES,
  type SafetensorsDtype, type SafetensorsHeader, type TensorInfo,
} from './safetensors-header.js';

export {
  checkHeaderLength, describeUntrusted, parseSafetensorsHeader, quoteUntrusted, SAFETENSORS_DTYPE_BYTES, shortenUntrusted,
  type SafetensorsDtype, type SafetensorsHeader, type TensorInfo,
} from './safetensors-header.js';

/** The dtypes writeSafetensors can produce from float32 data. */
export type SafetensorsWriteDtype = 'F32' | 'BF16' | 'F16';

export interface NamedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

// Reads and writes move at most this many bytes per call (a multiple of every element size); keeps scratch
// memory small and stays far below the ~2 GiB per-call limit of fs reads/writes.
const CHUNK_BYTES = 16 << 20;
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
      throw new Error(`${file}: is ${fileSize} bytes long, shorter than the 8-byte header length: ${CORRUPT}`);
    }
    const lengthBytes = new Uint8Array(8);
    await readExactly(handle, file, lengthBytes, 0);
    const headerLength = checkHeaderLength(file, lengthBytes, fileSize);
    const headerBytes = new Uint8Array(headerLength);
    await readExactly(handle, file, headerBytes, 8);
    return parseSafetensorsHeader(file, headerBytes, fileSize);
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
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new Error(`${file}: no such file`);
    throw error;
  }
  if (!isFile) throw new Error(`${file}: is not a regular file (a folder, pipe or device?)`);
  try {
    return await open(file, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`${file}: no such file`);
    throw error;
  }
}

/** Fills `target` from `position`; a short file is an error, not a silent partial read. */
async function readExactly(handle: FileHandle, file: string, target: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < target.length) {
    const { bytesRead } = await handle.read(target, done, target.length - done, position + done);
    if (bytesRead === 0) {
      throw new Error(`${file}: ends at byte ${position + done}, expected data up to byte ${position + target.length}: ${CORRUPT}`);
    }
    done += bytesRead;
  }
}

/** a caller's output buffer must hold exactly the tensor's elements */
function checkOutputLength(info: TensorInfo, numel: number, outLength: number): void {
  if (outLength !== numel) {
    throw new RangeError(`${info.file}: tensor ${quoteUntrusted(info.name)} has ${numel} elements ` +
      `(shape [${info.shape.join(', ')}]) but the output buffer has ${outLength}`);
  }
}

/** the tensor's bytes, as stored, straight into `bytes` (its byteLength), a chunk at a time */
async function readInto(handle: FileHandle, info: TensorInfo, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length; done += CHUNK_BYTES) {
    await readExactly(handle, info.file, bytes.subarray(done, done + CHUNK_BYTES), info.start + done);
  }
}

/**
 * The tensor's bytes a chunk (at most CHUNK_BYTES, whole elements) at a time, each handed to `visit` with the index
 * of its first element and its element count. The chunk has its own ArrayBuffer (not a pooled Buffer), so 2- and
 * 8-byte element views of it are aligned; it is reused, so `visit` must be done with it when it returns.
 */
async function forEachChunk(handle: FileHandle, info: TensorInfo,
  visit: (bytes: Uint8Array, first: number, n: number) => void): Promise<void> {
  const elementBytes = SAFETENSORS_DTYPE_BYTES[info.dtype];
  const scratch = new Uint8Array(Math.min(CHUNK_BYTES, info.byteLength));
  for (let done = 0; done < info.byteLength; done += scratch.length) {
    const bytes = scratch.subarray(0, Math.min(scratch.length, info.byteLength - done));
    await readExactly(handle, info.file, bytes, info.start + done);
    visit(bytes, done / elementBytes, bytes.length / elementBytes);
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
  if (out !== undefined) checkOutputLength(info, numel, out.length);
  const result = out ?? new Float32Array(numel);
  const handle = await openForReading(info.file);
  try {
    if (info.dtype === 'F32') {
      // already the right representation: read straight into the caller's memory
      await readInto(handle, info, new Uint8Array(result.buffer, result.byteOffset, info.byteLength));
      return result;
    }
    await forEachChunk(handle, info, (bytes, first, n) => convertToF32(info.dtype, bytes, result.subarray(first, first + n)));
    return result;
  } finally {
    await handle.close();
  }
}

/**
 * Reads one tensor as bfloat16 bit patterns into `out` (exactly numel values): a BF16 tensor byte for byte, any other
 * dtype through float32 rounded to nearest even, chunk by chunk (no float32 copy of the whole tensor: a bfloat16
 * base is loaded in its own memory).
 */
export async function readTensorBf16(info: TensorInfo, out: Uint16Array): Promise<Uint16Array> {
  assertLittleEndianHost();
  const elementBytes = SAFETENSORS_DTYPE_BYTES[info.dtype];
  checkOutputLength(info, info.byteLength / elementBytes, out.length);
  const handle = await openForReading(info.file);
  try {
    if (info.dtype === 'BF16') {
      await readInto(handle, info, new Uint8Array(out.buffer, out.byteOffset, info.byteLength));
      return out;
    }
    const wide = new Float32Array(Math.min(CHUNK_BYTES, info.byteLength) / elementBytes);
    await forEachChunk(handle, info, (bytes, first, n) => {
      convertToF32(info.dtype, bytes, wide.subarray(0, n));
      f32ToBf16(wide.subarray(0, n), out.subarray(first, first + n));
    });
    return out;
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
