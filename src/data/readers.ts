// Row readers for the files preference data comes in: JSON Lines, JSON (an array, or an object holding one) and
// Parquet, each optionally gzip-compressed, or a folder of them such as a Hugging Face dataset snapshot
// (data/train-00000-of-00001.parquet) from which one split is taken. Rows are yielded one at a time: JSON Lines
// stream line by line and Parquet row group by row group, so files larger than memory can be read.
// A row that cannot be parsed is yielded as an InvalidRow, so the caller decides between stopping and counting.

import { constants as bufferConstants } from 'node:buffer';
import { createReadStream } from 'node:fs';
import { open, readdir, stat } from 'node:fs/promises';
import { basename, join, relative, sep } from 'node:path';
import { createGunzip } from 'node:zlib';
import { DataError, briefly, type RowSource } from './errors.js';
import { DEFAULT_PARQUET_LIMITS, parquetRows, type ParquetLimits } from './parquet.js';
import { decodeStrict, describeInvalidByte, incompleteTail } from './utf8.js';

const { MAX_STRING_LENGTH } = bufferConstants;

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

export interface ReadLimits extends ParquetLimits {
  /** a JSON Lines line or one element of a JSON array longer than this (bytes; characters for arrays) is an invalid row */
  maxRowLength: number;
}

const MiB = 1024 ** 2;

/**
 * 128 MiB for one row: some 30 million tokens, far past any max_length, and far below V8's longest string
 * (512 Mi characters), where the line reader used to crash with a stack trace.
 */
export const DEFAULT_READ_LIMITS: ReadLimits = { ...DEFAULT_PARQUET_LIMITS, maxRowLength: 128 * MiB };

/** The bytes of a file, inflated on the way when it starts with gzip's magic number; failures name the file. */
async function* fileBytes(path: string, where: () => RowSource = () => ({ file: path })): AsyncGenerator<Buffer> {
  const gzipped = await startsWithGzipMagic(path);
  const raw = createReadStream(path);
  const input = gzipped ? raw.pipe(createGunzip()) : raw;
  try {
    for await (const chunk of input) yield chunk as Buffer;
  } catch (err) {
    throw new DataError(`cannot read (${briefly(err)})${gzipped ? '; is the gzip file complete?' : ''}`, where());
  } finally {
    input.destroy();
    raw.destroy();
  }
}

async function startsWithGzipMagic(path: string): Promise<boolean> {
  const handle = await open(path, 'r');
  try {
    const head = Buffer.alloc(2);
    const { bytesRead } = await handle.read(head, 0, 2, 0);
    return bytesRead === 2 && head[0] === 0x1f && head[1] === 0x8b;
  } finally {
    await handle.close();
  }
}

/** A file's text chunk by chunk, refused at the first byte that is not UTF-8 (named by byte offset and line). */
async function* fileText(path: string): AsyncGenerator<string> {
  let carry: Buffer | null = null; // a character cut by the end of the previous chunk
  let offset = 0; // file offset of the first byte of `bytes` below
  let line = 1;
  for await (const chunk of fileBytes(path, () => ({ file: path, line }))) {
    const bytes: Buffer = carry ? Buffer.concat([carry, chunk]) : chunk;
    const whole = incompleteTail(bytes);
    const decoded = decodeStrict(bytes.subarray(0, whole));
    if ('invalidAt' in decoded) {
      line += countNewlines(bytes.subarray(0, decoded.invalidAt));
      throw new DataError(describeInvalidByte(bytes, decoded.invalidAt, offset + decoded.invalidAt), { file: path, line });
    }
    line += countNewlines(bytes.subarray(0, whole));
    carry = whole < bytes.length ? bytes.subarray(whole) : null;
    offset += whole;
    yield decoded.text;
  }
  if (carry) throw new DataError(describeInvalidByte(carry, 0, offset) + ' (the file ends inside a character)', { file: path, line });
}

function countNewlines(bytes: Uint8Array): number {
  let n = 0;
  for (let at = bytes.indexOf(0x0a); at >= 0; at = bytes.indexOf(0x0a, at + 1)) n++;
  return n;
}

/** Files saved by some Windows tools start with a byte-order mark, which JSON.parse rejects. */
const stripBom = (text: string): string => (text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);

function parseObjectLine(text: string, source: RowSource): ReadItem {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { error: new DataError(`not valid JSON (${briefly(err)})`, source), source };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { error: new DataError('each row must be a JSON object with named fields', source), source };
  }
  return { values: value as Record<string, unknown>, source };
}

const tooLong = (limit: number, unit: 'bytes' | 'characters'): string =>
  `longer than ${limit >= MiB ? `${Math.round(limit / MiB)} Mi` : limit} ${unit}, more than one row can sensibly hold`;

/**
 * JSON Lines, split on newline bytes (which never occur inside a multi-byte character), so each line is decoded
 * strictly on its own and one that is too long is skipped without being held: a bad line is an invalid row.
 */
async function* readJsonLines(path: string, limits: ReadLimits): AsyncGenerator<ReadItem> {
  let parts: Buffer[] = [];
  let length = 0;
  let overlong = false;
  let line = 1;
  let lineOffset = 0; // file offset of the current line's first byte
  let offset = 0; // file offset of the current chunk's first byte
  const finish = (): ReadItem | null => {
    const source = { file: path, line };
    if (overlong) return { error: new DataError(`the line is ${tooLong(limits.maxRowLength, 'bytes')}; is it one row per line?`, source), source };
    let bytes = parts.length === 1 ? parts[0]! : Buffer.concat(parts, length);
    if (bytes[bytes.length - 1] === 0x0d) bytes = bytes.subarray(0, -1); // CRLF
    const decoded = decodeStrict(bytes);
    if ('invalidAt' in decoded) {
      return { error: new DataError(describeInvalidByte(bytes, decoded.invalidAt, lineOffset + decoded.invalidAt), source), source };
    }
    const text = line === 1 ? stripBom(decoded.text) : decoded.text;
    return text.trim() === '' ? null : parseObjectLine(text, source);
  };
  for await (const chunk of fileBytes(path, () => ({ file: path, line }))) {
    let from = 0;
    for (;;) {
      const newline = chunk.indexOf(0x0a, from);
      const end = newline < 0 ? chunk.length : newline;
      if (!overlong && length + (end - from) > limits.maxRowLength) {
        overlong = true;
        parts = [];
      }
      if (!overlong && end > from) parts.push(chunk.subarray(from, end));
      length += end - from;
      if (newline < 0) break;
      const item = finish();
      if (item) yield item;
      parts = [];
      length = 0;
      overlong = false;
      line++;
      lineOffset = offset + newline + 1;
      from = newline + 1;
    }
    offset += chunk.length;
  }
  if (length > 0 || overlong) {
    const item = finish();
    if (item) yield item;
  }
}

const isJsonSpace = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/** Where the top-level array scanner is between elements. */
type ArrayState = 'before [' | 'first element or ]' | 'element' | ', or ]' | 'element after ,' | 'after ]';

/**
 * A top-level JSON array read element by element in one pass: strings and nesting are tracked so each row's text
 * is cut out and parsed on its own. Memory holds one row; a broken row is named by its line and index, and is an
 * invalid row; a broken array (a trailing or missing comma, text after the closing ]) stops the file, as
 * Python's json module refuses it.
 */
async function* streamJsonArray(path: string, limits: ReadLimits): AsyncGenerator<ReadItem> {
  let state: ArrayState = 'before [';
  let line = 1;
  let depth = 0;
  let inString = false;
  let escaped = false;
  let parts: string[] = [];
  let length = 0;
  let overlong = false;
  let elementLine = 0;
  let row = 0;
  let first = true;
  const refuse = (what: string): never => {
    throw new DataError(`the JSON array ${what}`, { file: path, line });
  };
  const finish = (): ReadItem => {
    const source = { file: path, line: elementLine, row: row++ };
    const item: ReadItem = overlong
      ? { error: new DataError(`the row is ${tooLong(limits.maxRowLength, 'characters')}`, source), source }
      : parseObjectLine(parts.join(''), source);
    parts = [];
    length = 0;
    overlong = false;
    return item;
  };
  for await (let chunk of fileText(path)) {
    if (first) chunk = stripBom(chunk);
    first = false;
    let from = 0; // where the current element's text starts in this chunk
    const keep = (to: number): void => {
      length += to - from;
      if (!overlong && length > limits.maxRowLength) {
        overlong = true;
        parts = [];
      }
      if (!overlong && to > from) parts.push(chunk.slice(from, to));
    };
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk.charCodeAt(i);
      if (c === 0x0a) line++;
      if (state === 'element') {
        if (inString) {
          if (escaped) escaped = false;
          else if (c === 0x5c) escaped = true; // backslash
          else if (c === 0x22) {
            inString = false;
            if (depth === 0) {
              keep(i + 1); // a string row (refused when parsed, but counted as one row)
              yield finish();
              state = ', or ]';
            }
          }
        } else if (depth === 0) {
          // a number, true, false or null ends at the first delimiter, which is then read as one
          if (c === 0x2c || c === 0x5d || isJsonSpace(c)) {
            keep(i);
            yield finish();
            state = ', or ]';
            if (c === 0x0a) line--;
            i--;
          }
        } else if (c === 0x22) inString = true;
        else if (c === 0x7b || c === 0x5b) depth++;
        else if (c === 0x7d || c === 0x5d) {
          depth--;
          if (depth === 0) {
            keep(i + 1);
            yield finish();
            state = ', or ]';
          }
        }
        continue;
      }
      if (isJsonSpace(c)) continue;
      if (state === 'before [') {
        if (c !== 0x5b) refuse(`is missing: the file starts with ${JSON.stringify(chunk[i])}`);
        state = 'first element or ]';
      } else if (state === ', or ]') {
        if (c === 0x2c) state = 'element after ,';
        else if (c === 0x5d) state = 'after ]';
        else refuse(`lacks a comma between rows ${row - 1} and ${row}`);
      } else if (state === 'after ]') {
        refuse(`is followed by ${JSON.stringify(chunk[i])} after its closing ]`);
      } else if (c === 0x5d) {
        if (state === 'element after ,') refuse('has a comma after its last row (JSON allows no trailing comma)');
        state = 'after ]';
      } else if (c === 0x2c) {
        refuse('has a comma where a row should be');
      } else {
        state = 'element';
        from = i;
        elementLine = line;
        inString = c === 0x22;
        depth = c === 0x7b || c === 0x5b ? 1 : 0;
      }
    }
    if (state === 'element') keep(chunk.length);
  }
  if ((state as ArrayState) !== 'after ]') refuse(state === 'before [' ? 'is missing: the file is empty' : 'is not closed (file cut short?)');
}

function* rowsOfJsonArray(rows: unknown[], file: string): Generator<ReadItem> {
  for (const [row, value] of rows.entries()) {
    const source = { file, row };
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      yield { error: new DataError('each row must be a JSON object with named fields', source), source };
    } else yield { values: value as Record<string, unknown>, source };
  }
}

/**
 * The first non-space character of a file and, when it is {, its first line and whether more lines follow: enough
 * to tell an array from JSON Lines from one object. Reads up to the second line's first character, so a
 * single-line file is read once to its end (never further than one row may be long), and only a new chunk is
 * searched each time.
 */
async function peekJson(path: string, limits: ReadLimits): Promise<{ first: string; firstLine: string | null; moreLines: boolean }> {
  const parts: string[] = [];
  let length = 0;
  let first = '';
  let newlineAt = -1; // in the text read so far
  let moreLines = false;
  for await (let chunk of fileText(path)) {
    if (parts.length === 0) chunk = stripBom(chunk);
    if (first === '') first = chunk.trimStart()[0] ?? '';
    if (first === '[') return { first, firstLine: null, moreLines: false };
    parts.push(chunk);
    if (newlineAt < 0) {
      const newline = chunk.indexOf('\n');
      if (newline >= 0) {
        newlineAt = length + newline;
        moreLines = chunk.slice(newline + 1).trim() !== '';
      }
    } else moreLines = chunk.trim() !== '';
    length += chunk.length;
    if (moreLines || (newlineAt < 0 && length > limits.maxRowLength)) break;
  }
  const firstLine = newlineAt < 0 ? (length > limits.maxRowLength ? null : parts.join('')) : parts.join('').slice(0, newlineAt);
  return { first, firstLine, moreLines };
}

/**
 * .json: an array of rows (streamed), JSON Lines under a .json name (datasets' to_json() writes those; streamed),
 * or an object holding the rows in an array, per split (parsed whole: JSON gives no row boundaries to stream on).
 */
async function* readJson(path: string, split: string | undefined, limits: ReadLimits): AsyncGenerator<ReadItem> {
  const head = await peekJson(path, limits);
  if (head.first === '[') {
    yield* streamJsonArray(path, limits);
    return;
  }
  if (head.first === '{' && head.moreLines && head.firstLine !== null && !isInvalid(parseObjectLine(head.firstLine, { file: path }))) {
    yield* readJsonLines(path, limits);
    return;
  }
  const parts: string[] = [];
  let length = 0;
  for await (const chunk of fileText(path)) {
    length += chunk.length;
    if (length > MAX_STRING_LENGTH) {
      throw new DataError(
        `${path}: a JSON object over ${Math.floor(MAX_STRING_LENGTH / MiB)} Mi characters cannot be parsed whole; ` +
          'write the rows as JSON Lines or as a top-level array, which are read row by row',
      );
    }
    parts.push(chunk);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(stripBom(parts.join('')));
  } catch (err) {
    throw new DataError(`not valid JSON (${briefly(err)})`, { file: path });
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
        ? `${path}: the JSON object holds no array of rows (keys: ${Object.keys(doc).slice(0, 20).join(', ')})`
        : `${path}: the JSON object holds several arrays (${keys.join(', ')}); choose one with --dataset-split`,
    );
  }
  throw new DataError(`${path}: expected a JSON array of rows or an object holding one`);
}

/** Every row of a data file or of one split of a dataset folder, in file order. */
export async function* readRows(path: string, opts: { split?: string; limits?: Partial<ReadLimits> } = {}): AsyncGenerator<ReadItem> {
  const limits = { ...DEFAULT_READ_LIMITS, ...opts.limits };
  for (const file of await resolveDataFiles(path, opts.split)) {
    const kind = formatOf(file)!;
    if (kind.format === 'jsonl') yield* readJsonLines(file, limits);
    else if (kind.format === 'json') yield* readJson(file, opts.split, limits);
    else yield* parquetRows(file, limits);
  }
}
