// The GGUF container written to a file: the encoding is src/io/gguf/encode.ts's (no file system, shared with the
// page's download); this module streams it into a file tensor by tensor and replaces the target atomically
// (temp file + rename).

import type { FileHandle } from 'node:fs/promises';
import { endianness } from 'node:os';

import { replaceFileAtomically } from '../atomic-file.js';
import { writeGgufTo, type GgufMetadata, type GgufTensorPlan } from './encode.js';

export {
  GGUF_ALIGNMENT, GGUF_VERSION, encodeGgufHeader, ggufBytes, tensorByteSize, writeGgufTo,
  type GgufMetadata, type GgufSink, type GgufTensorPlan, type GgufValue,
} from './encode.js';

// at most this many bytes per write call: far below the ~2 GiB a single fs write accepts (an embedding can be larger)
const WRITE_CHUNK_BYTES = 16 << 20;

async function writeAt(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, done, Math.min(WRITE_CHUNK_BYTES, bytes.length - done), position + done);
    done += bytesWritten;
  }
}

/**
 * Writes a GGUF file: header, then each tensor's data produced, encoded and written in turn (only one tensor's
 * encoded bytes exist at a time), replacing `file` atomically.
 */
export async function writeGguf(file: string, metadata: GgufMetadata, tensors: readonly GgufTensorPlan[]): Promise<void> {
  if (endianness() !== 'LE') throw new Error('GGUF export needs a little-endian host');
  await replaceFileAtomically(file, async (handle) => {
    await writeGgufTo({ write: (bytes, position) => writeAt(handle, bytes, position) }, metadata, tensors);
  });
}
