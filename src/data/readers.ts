// Row readers for the files preference data comes in: JSON Lines, JSON (an array, or an object holding one) and
// Parquet, each optionally gzip-compressed, or a folder of them such as a Hugging Face dataset snapshot
// (data/train-00000-of-00001.parquet) from which one split is taken. Rows are yielded one at a time: JSON Lines
// stream line by line and Parquet row group by row group, so files larger than memory can be read.
// A row that cannot be parsed is yielded as an InvalidRow, so the caller decides between stopping and counting.

import { createReadStream } from 'node:fs';
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { basename, join, relative, sep } from 'node:path';
import { createInterface } from 'node:readline';
import { gunzipSync, createGunzip } from 'node:zlib';
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from 'hyparquet';
import type { AsyncBuffer } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { DataError, type RowSource } from './errors.js';

export interface RawRow {
  values: Record<string, unknown>;
  source: RowSource;
}

export interface InvalidRow {
  error: DataError;
  source: RowSource;
}

export type ReadItem = RawRow | InvalidRow;

export function isInvalid(item: ReadItem): item is InvalidRow {
  return 'error' in item;
}

export type DataFileFormat = 'jsonl' | 'json' | 'parquet';

const EXTENSIONS: Record<string, DataFileFormat> = {
  '.jsonl': 'jsonl',
  '.ndjson': 'jsonl',
  '.json': 'json',
  '.parquet': 'parquet',
};

/** The format a file name says it holds, or null for files that are not data (README.md, .gitattributes...). */
export function formatOf(path: string): { format: DataFileFormat; gzip: boolean } | null {
  const gzip = path.endsWith('.gz');
  const name = gzip ? path.slice(0, -3) : path;
  for (const [ext, format] of Object.entries(EXTENSIONS)) if (name.endsWith(ext)) return { format, gzip };
  return null;
}

/** Files that sit next to data in dataset folders but hold metadata, not rows. */
const METADATA_FILES = new Set(['dataset_info.json', 'dataset_infos.json', 'state.json', 'dataset_dict.json']);

async function listDataFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (d: string, depth: number): Promise<void> => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      if (entry.name.startsWith('.')) continue; // .git, .cache, .gitattributes
      const path = join(d, entry.name);
      if (entry.isDirectory() && depth < 4) await walk(path, depth + 1);
      else if (entry.isFile() && formatOf(entry.name) && !METADATA_FILES.has(entry.name)) found.push(path);
    }
  };
  await walk(dir, 0);
  return found.sort();
}

/** The split a file's name gives: what comes before the first - or . (train-00000-of-00002.parquet, test.jsonl). */
const splitNameOf = (file: string): string => basename(file).split(/[-.]/)[0]!;

/** Hugging Face's naming: a file is in split S when its name says S or a folder on its path is named S. */
function inSplit(root: string, file: string, split: string): boolean {
  return splitNameOf(file) === split || relative(root, file).split(sep).slice(0, -1).includes(split);
}

/** Names that mean a held-out split, so a folder holding them is not one undivided split. */
const HELD_OUT_SPLITS = /^(test|testing|eval|evaluation|valid|validation|val|dev)(_.*)?$/;

/** A data file, or the files of one split of a dataset folder (train when no split is given and there is one). */
export async function resolveDataFiles(path: string, split?: string): Promise<string[]> {
  let info;
  try {
    info = await stat(path);
  } catch {
    throw new DataError(`dataset ${path} not found`);
  }
  if (!info.isDirectory()) {
    if (!formatOf(path)) {
      throw new DataError(`${path}: unknown dataset format; use .jsonl, .json or .parquet (optionally .gz)`);
    }
    return [path];
  }
  const files = await listDataFiles(path);
  if (files.length === 0) throw new DataError(`${path}: no .jsonl, .json or .parquet files in this folder`);
  const chosen = files.filter((f) => inSplit(path, f, split ?? 'train'));
  if (chosen.length > 0) return chosen;
  const names = [...new Set(files.map(splitNameOf))].sort();
  // a folder of files without split names is one split; one with test/validation files needs a choice
  if (split === undefined && !names.some((n) => HELD_OUT_SPLITS.test(n))) return files;
  throw new DataError(
    `${path}: no files for split "${split ?? 'train'}"; choose one of ${names.join(', ')} with --dataset-split ` +
      `(files: ${files.map((f) => relative(path, f)).join(', ')})`,
  );
}

async function isGzipped(path: string): Promise<boolean> {
  const handle = await open(path, 'r');
  try {
    const head = Buffer.alloc(2);
    const { bytesRead } = await handle.read(head, 0, 2, 0);
    return bytesRead === 2 && head[0] === 0x1f && head[1] === 0x8b;
  } finally {
    await handle.close();
  }
}

/** Files saved by some Windows tools start with a byte-order mark, which JSON.parse rejects. */
const stripBom = (text: string): string => (text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);

function parseObjectLine(text: string, source: RowSource): ReadItem {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { error: new DataError(`not valid JSON (${(err as Error).message})`, source), source };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { error: new DataError('each row must be a JSON object with named fields', source), source };
  }
  return { values: value as Record<string, unknown>, source };
}

async function* readJsonLines(path: string): AsyncGenerator<ReadItem> {
  const raw = createReadStream(path);
  const input = (await isGzipped(path)) ? raw.pipe(createGunzip()) : raw;
  const lines = createInterface({ input, crlfDelay: Infinity });
  let line = 0;
  try {
    for await (const text of lines) {
      line++;
      if (text.trim() === '') continue;
      yield parseObjectLine(line === 1 ? stripBom(text) : text, { file: path, line });
    }
  } catch (err) {
    throw new DataError(`cannot read (${(err as Error).message})`, { file: path, line: line + 1 });
  } finally {
    lines.close();
    raw.destroy();
  }
}

/** The decoded text of a file, chunk by chunk (gzip inflated on the way; multi-byte characters never split). */
async function* textChunks(path: string): AsyncGenerator<string> {
  const raw = createReadStream(path);
  const input = (await isGzipped(path)) ? raw.pipe(createGunzip()) : raw;
  input.setEncoding('utf8');
  try {
    for await (const chunk of input) yield chunk as string;
  } catch (err) {
    throw new DataError(`${path}: cannot read (${(err as Error).message})`);
  } finally {
    raw.destroy();
  }
}

const isJsonSpace = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09 || c === 0xfeff;

/**
 * A top-level JSON array read element by element: strings and nesting are tracked so each row's text is cut out
 * and parsed on its own. Memory holds one row, and a broken row is named by the line it starts on.
 */
async function* streamJsonArray(path: string): AsyncGenerator<ReadItem> {
  let line = 1;
  let opened = false;
  let closed = false;
  let inElement = false;
  let depth = 0;
  let inString = false;
  let escaped = false;
  let element = '';
  let elementLine = 0;
  let row = 0;
  for await (const chunk of textChunks(path)) {
    let from = 0; // where the current element's text starts in this chunk
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk.charCodeAt(i);
      if (!inElement) {
        if (c === 0x0a) line++;
        if (isJsonSpace(c) || (opened && !closed && c === 0x2c)) continue; // whitespace, ','
        if (!opened && c === 0x5b) opened = true; // '['
        else if (opened && !closed && c === 0x5d) closed = true; // ']'
        else if (opened && !closed) {
          inElement = true;
          from = i;
          elementLine = line;
          i--; // scan this character as part of the element
        } else throw new DataError(`unexpected ${JSON.stringify(chunk[i])} ${closed ? 'after the closing ]' : 'before ['}`, { file: path, line });
        continue;
      }
      if (c === 0x0a) line++;
      if (inString) {
        if (escaped) escaped = false;
        else if (c === 0x5c) escaped = true; // backslash
        else if (c === 0x22) inString = false;
        continue;
      }
      if (c === 0x22) inString = true;
      else if (c === 0x7b || c === 0x5b) depth++;
      else if ((c === 0x7d || c === 0x5d) && depth > 0) depth--;
      else if (depth === 0 && (c === 0x2c || c === 0x5d)) {
        element += chunk.slice(from, i);
        yield parseObjectLine(element, { file: path, line: elementLine, row: row++ });
        element = '';
        inElement = false;
        if (c === 0x5d) closed = true;
      }
    }
    if (inElement) element += chunk.slice(from);
  }
  if (!opened || !closed || inElement) {
    throw new DataError(`the JSON array ${opened ? 'is not closed (file cut short?)' : 'is missing'}`, { file: path, line });
  }
}

function* rowsOfJsonArray(rows: unknown[], file: string): Generator<ReadItem> {
  for (const [row, value] of rows.entries()) {
    const source = { file, row };
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      yield { error: new DataError('each row must be a JSON object with named fields', source), source };
    } else yield { values: value as Record<string, unknown>, source };
  }
}

/** The first non-space character and the first line of a file, read without reading the rest. */
async function peekJson(path: string): Promise<{ first: string; firstLine: string; moreLines: boolean }> {
  let text = '';
  for await (const chunk of textChunks(path)) {
    text += chunk;
    const nl = text.indexOf('\n');
    if (nl >= 0 && text.slice(nl + 1).trim() !== '') break;
  }
  const nl = text.indexOf('\n');
  return {
    first: text.trimStart()[0] ?? '',
    firstLine: stripBom(nl < 0 ? text : text.slice(0, nl)),
    moreLines: nl >= 0 && text.slice(nl + 1).trim() !== '',
  };
}

/**
 * .json: an array of rows (streamed), JSON Lines under a .json name (datasets' to_json() writes those; streamed),
 * or an object holding the rows in an array, per split (parsed whole: JSON gives no row boundaries to stream on).
 */
async function* readJson(path: string, split?: string): AsyncGenerator<ReadItem> {
  const head = await peekJson(path);
  if (head.first === '[') {
    yield* streamJsonArray(path);
    return;
  }
  if (head.first === '{' && head.moreLines && !isInvalid(parseObjectLine(head.firstLine, { file: path }))) {
    yield* readJsonLines(path);
    return;
  }
  let text = '';
  for await (const chunk of textChunks(path)) text += chunk;
  let doc: unknown;
  try {
    doc = JSON.parse(stripBom(text));
  } catch (err) {
    throw new DataError(`not valid JSON (${(err as Error).message})`, { file: path });
  }
  if (typeof doc === 'object' && doc !== null && !Array.isArray(doc)) {
    const arrays = Object.entries(doc).filter(([, v]) => Array.isArray(v)) as [string, unknown[]][];
    const pick = arrays.find(([k]) => k === split) ?? (arrays.length === 1 ? arrays[0] : undefined);
    if (pick) {
      yield* rowsOfJsonArray(pick[1], path);
      return;
    }
    const keys = arrays.map(([k]) => k);
    throw new DataError(
      keys.length === 0
        ? `${path}: the JSON object holds no array of rows (keys: ${Object.keys(doc).join(', ')})`
        : `${path}: the JSON object holds several arrays (${keys.join(', ')}); choose one with --dataset-split`,
    );
  }
  throw new DataError(`${path}: expected a JSON array of rows or an object holding one`);
}

function memoryBuffer(bytes: Uint8Array): AsyncBuffer {
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  return { byteLength: buffer.byteLength, slice: (start, end) => buffer.slice(start, end) };
}

/** Parquet is read one row group at a time, so memory holds one group, not the file. */
async function* readParquet(path: string): AsyncGenerator<ReadItem> {
  // a gzipped Parquet file has to be inflated whole: gzip is not seekable and Parquet starts from its footer
  const file = (await isGzipped(path)) ? memoryBuffer(gunzipSync(await readFile(path))) : await asyncBufferFromFile(path);
  let metadata;
  try {
    metadata = await parquetMetadataAsync(file);
  } catch (err) {
    throw new DataError(`${path}: not a readable Parquet file (${(err as Error).message})`);
  }
  let rowStart = 0;
  for (const group of metadata.row_groups) {
    const rowEnd = rowStart + Number(group.num_rows);
    let rows;
    try {
      rows = await parquetReadObjects({ file, metadata, rowStart, rowEnd, compressors });
    } catch (err) {
      throw new DataError(`cannot decode rows ${rowStart + 1}..${rowEnd} (${(err as Error).message})`, { file: path, row: rowStart });
    }
    for (const [i, values] of rows.entries()) yield { values, source: { file: path, row: rowStart + i } };
    rowStart = rowEnd;
  }
}

/** Every row of a data file or of one split of a dataset folder, in file order. */
export async function* readRows(path: string, opts: { split?: string } = {}): AsyncGenerator<ReadItem> {
  for (const file of await resolveDataFiles(path, opts.split)) {
    const kind = formatOf(file)!;
    if (kind.format === 'jsonl') yield* readJsonLines(file);
    else if (kind.format === 'json') yield* readJson(file, opts.split);
    else yield* readParquet(file);
  }
}
