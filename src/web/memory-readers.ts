// The data readers of src/data/readers.ts over files held in memory: a page has no file system, only the bytes of
// files the user picked. The browser bundle (scripts/build-web.mjs) puts this module in place of readers.ts, so
// src/data/dataset.ts (streamPreferencePairs: parsing, templating, tokenising and the drop counts of `orpo data
// stats`) runs unchanged on them. The rows come from the very parsers `orpo train` uses on files: JSON and JSON
// Lines from src/data/json-rows.ts (same line-length bounds, same refusal of a trailing or missing comma, same
// messages with file and line), Parquet from src/data/parquet-decode.ts. Only the bytes' way in differs: a picked
// file is sliced into chunks, and a gzipped one is inflated by the browser's DecompressionStream as it is read.
import type * as NodeReaders from '../data/readers.js';
import { DataError, briefly, type RowSource } from '../data/errors.js';
import {
  DEFAULT_MAX_ROW_LENGTH, V8_MAX_STRING_LENGTH, concatBytes, formatOf as formatOfName, isInvalid as isInvalidItem, readJson, readJsonLines, type ByteChunks,
} from '../data/json-rows.js';
import { isGzip, memoryBuffer, parquetRowsOf } from '../data/parquet-decode.js';

const files = new Map<string, Uint8Array>();

/** Makes `bytes` readable as the data file `name` (a plain file name such as train.jsonl). */
export function registerDataFile(name: string, bytes: Uint8Array): void {
  files.set(name, bytes);
}

export function forgetDataFile(name: string): void {
  files.delete(name);
}

export const isInvalid: typeof NodeReaders.isInvalid = isInvalidItem;
export const formatOf: typeof NodeReaders.formatOf = formatOfName;

export const resolveDataFiles: typeof NodeReaders.resolveDataFiles = async (path) => {
  if (!files.has(path)) throw new DataError(`dataset ${path} not found (no file of that name was given to the page)`);
  if (formatOf(path) === null) throw new DataError(`${path}: unknown dataset format; use .jsonl, .json or .parquet (optionally .gz)`);
  return [path];
};

// the size of the pieces a picked file is read in: what Node's file streams read at a time, so text is decoded a
// chunk at a time rather than as one string (a file past V8's longest string still streams row by row)
const CHUNK_BYTES = 64 * 1024;

/** The chunks of a picked file, inflated when it starts with gzip's magic number; failures as readers.ts words them. */
function memoryChunks(bytes: Uint8Array): ByteChunks {
  return async function* chunks(where: () => RowSource) {
    if (!isGzip(bytes)) {
      for (let at = 0; at < bytes.length; at += CHUNK_BYTES) yield bytes.subarray(at, at + CHUNK_BYTES);
      return;
    }
    const reader = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream('gzip')).getReader();
    const read = async (): ReturnType<typeof reader.read> => {
      try {
        return await reader.read();
      } catch (err) {
        throw new DataError(`cannot read (${briefly(err)}); is the gzip file complete?`, where());
      }
    };
    try {
      for (;;) {
        const next = await read();
        if (next.done) return;
        yield next.value;
      }
    } finally {
      // a reader that stops early (a refused row) releases the inflation
      void reader.cancel().catch(() => undefined);
    }
  };
}

/** The file's bytes, inflated when gzipped (Parquet is decoded from one buffer). */
async function plainBytes(path: string, bytes: Uint8Array): Promise<Uint8Array> {
  if (!isGzip(bytes)) return bytes;
  const parts: Uint8Array[] = [];
  for await (const chunk of memoryChunks(bytes)(() => ({ file: path }))) parts.push(chunk);
  return concatBytes(parts);
}

export const readRows: typeof NodeReaders.readRows = async function* readRows(path, opts = {}) {
  const json = { maxRowLength: opts.limits?.maxRowLength ?? DEFAULT_MAX_ROW_LENGTH, maxStringLength: V8_MAX_STRING_LENGTH };
  for (const file of await resolveDataFiles(path, opts.split)) {
    const bytes = files.get(file)!;
    const format = formatOf(file)!.format;
    if (format === 'parquet') yield* parquetRowsOf(file, memoryBuffer(await plainBytes(file, bytes)));
    else if (format === 'jsonl') yield* readJsonLines(file, memoryChunks(bytes), json);
    else yield* readJson(file, memoryChunks(bytes), opts.split, json);
  }
};
