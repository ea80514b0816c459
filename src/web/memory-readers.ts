// The data readers of src/data/readers.ts over files held in memory: a page has no file system, only the bytes of
// files the user picked. The browser bundle (scripts/build-web.mjs) puts this module in place of readers.ts, so
// src/data/dataset.ts (streamPreferencePairs: parsing, templating, tokenising and the drop counts of `orpo data
// stats`) runs unchanged on them. Same row rules as readers.ts: JSON Lines (one object a line, blank lines skipped),
// JSON (an array of rows, JSON Lines under a .json name, or an object holding the rows in an array per split),
// optionally gzip-compressed; a row that is not a JSON object is an InvalidRow for the caller to count or stop on.
// Parquet is decoded from the bytes by the same checked decoder as on Node (src/data/parquet-decode.ts).
import type * as NodeReaders from '../data/readers.js';
import { DataError, type RowSource } from '../data/errors.js';
import { decodeStrict, describeInvalidByte } from '../data/utf8.js';
import { isGzip, memoryBuffer, parquetRowsOf } from '../data/parquet-decode.js';

type ReadItem = NodeReaders.ReadItem;

const files = new Map<string, Uint8Array>();

/** Makes `bytes` readable as the data file `name` (a plain file name such as train.jsonl). */
export function registerDataFile(name: string, bytes: Uint8Array): void {
  files.set(name, bytes);
}

export function forgetDataFile(name: string): void {
  files.delete(name);
}

export const isInvalid: typeof NodeReaders.isInvalid = (item): item is NodeReaders.InvalidRow => 'error' in item;

const EXTENSIONS: Record<string, NodeReaders.DataFileFormat> = { '.jsonl': 'jsonl', '.ndjson': 'jsonl', '.json': 'json', '.parquet': 'parquet' };

export const formatOf: typeof NodeReaders.formatOf = (path) => {
  const gzip = path.endsWith('.gz');
  const name = gzip ? path.slice(0, -3) : path;
  for (const [ext, format] of Object.entries(EXTENSIONS)) if (name.endsWith(ext)) return { format, gzip };
  return null;
};

export const resolveDataFiles: typeof NodeReaders.resolveDataFiles = async (path) => {
  if (!files.has(path)) throw new DataError(`dataset ${path} not found (no file of that name was given to the page)`);
  const kind = formatOf(path);
  if (kind === null) throw new DataError(`${path}: unknown dataset format; use .jsonl, .json or .parquet (optionally .gz)`);
  return [path];
};

/** The file's bytes, inflated when gzipped (the picked file is in memory already; so is what it inflates to). */
async function plainBytes(path: string, bytes: Uint8Array): Promise<Uint8Array> {
  if (!isGzip(bytes)) return bytes;
  try {
    const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream('gzip'));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  } catch (err) {
    throw new DataError(`${path}: cannot be inflated (${(err as Error).message}); is the gzip file complete?`);
  }
}

async function textOf(path: string, bytes: Uint8Array): Promise<string> {
  const plain = await plainBytes(path, bytes);
  // invalid UTF-8 is refused, as readers.ts and Python's readers refuse it, not turned into U+FFFD
  const decoded = decodeStrict(plain);
  if (!('text' in decoded)) {
    const line = 1 + plain.subarray(0, decoded.invalidAt).reduce((n, b) => n + (b === 0x0a ? 1 : 0), 0);
    throw new DataError(describeInvalidByte(plain, decoded.invalidAt, decoded.invalidAt), { file: path, line });
  }
  const { text } = decoded;
  // files saved by some Windows tools start with a byte-order mark, which JSON.parse rejects
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

function parseObject(text: string, source: RowSource): ReadItem {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { error: new DataError(`not valid JSON (${(err as Error).message})`, source), source };
  }
  return objectRow(value, source);
}

function objectRow(value: unknown, source: RowSource): ReadItem {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { error: new DataError('each row must be a JSON object with named fields', source), source };
  }
  return { values: value as Record<string, unknown>, source };
}

function* jsonLines(path: string, text: string): Generator<ReadItem> {
  const lines = text.split(/\r?\n/);
  for (const [i, line] of lines.entries()) {
    if (line.trim() !== '') yield parseObject(line, { file: path, line: i + 1 });
  }
}

function* jsonDocument(path: string, text: string, split: string | undefined): Generator<ReadItem> {
  const trimmed = text.trimStart();
  const newline = trimmed.indexOf('\n');
  // datasets' to_json() writes JSON Lines under a .json name
  if (trimmed.startsWith('{') && newline >= 0 && trimmed.slice(newline + 1).trim() !== '' &&
    !isInvalid(parseObject(trimmed.slice(0, newline), { file: path }))) {
    yield* jsonLines(path, text);
    return;
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new DataError(`not valid JSON (${(err as Error).message})`, { file: path });
  }
  let rows: unknown[] | undefined;
  if (Array.isArray(doc)) rows = doc;
  else if (typeof doc === 'object' && doc !== null) {
    const arrays = Object.entries(doc).filter(([, v]) => Array.isArray(v)) as [string, unknown[]][];
    const pick = arrays.find(([k]) => k === split) ?? (arrays.length === 1 ? arrays[0] : undefined);
    if (pick === undefined) {
      const keys = arrays.map(([k]) => k);
      throw new DataError(keys.length === 0
        ? `${path}: the JSON object holds no array of rows (keys: ${Object.keys(doc).join(', ')})`
        : `${path}: the JSON object holds several arrays (${keys.join(', ')}); choose one as the split`);
    }
    rows = pick[1];
  }
  if (rows === undefined) throw new DataError(`${path}: expected a JSON array of rows or an object holding one`);
  for (const [row, value] of rows.entries()) yield objectRow(value, { file: path, row });
}

export const readRows: typeof NodeReaders.readRows = async function* readRows(path, opts = {}) {
  for (const file of await resolveDataFiles(path, opts.split)) {
    const format = formatOf(file)!.format;
    if (format === 'parquet') {
      yield* parquetRowsOf(file, memoryBuffer(await plainBytes(file, files.get(file)!)));
      continue;
    }
    const text = await textOf(file, files.get(file)!);
    if (format === 'jsonl') yield* jsonLines(file, text);
    else yield* jsonDocument(file, text, opts.split);
  }
};
