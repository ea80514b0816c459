// The rows of JSON Lines and JSON data files, parsed from their bytes with no file system: src/data/readers.ts
// hands it a file's bytes as Node reads them (streamed, gunzipped), and the page's src/web/memory-readers.ts the
// bytes of a file the user picked, so both accept and refuse the same files with the same messages (file, line).
//   - JSON Lines: one object a line, blank lines skipped, split on newline bytes; a line longer than maxRowLength is
//     an invalid row without being held.
//   - JSON: an array of rows (streamed element by element, a trailing or missing comma refused as Python's json
//     refuses it), JSON Lines under a .json name (datasets' to_json() writes those), or an object holding the rows
//     in an array per split (parsed whole).
// Text must be UTF-8 (a byte that is not is refused with its offset and line, not read as U+FFFD); a byte-order
// mark at the start is dropped. A row that cannot be parsed is yielded as an InvalidRow, so the caller decides
// between stopping and counting.

import { DataError, briefly, type RowSource } from './errors.js';
import { decodeStrict, describeInvalidByte, incompleteTail } from './utf8.js';

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

/**
 * A data file's bytes (inflated when gzipped), chunk by chunk from its start, each time it is called: the JSON
 * reader looks at the head first and then reads from the start again. A failure to read is thrown as a DataError
 * at `where()`, the place reached so far.
 */
export type ByteChunks = (where: () => RowSource) => AsyncIterable<Uint8Array>;

export interface JsonLimits {
  /** a JSON Lines line or one element of a JSON array longer than this (bytes; characters for arrays) is an invalid row */
  maxRowLength: number;
  /** the longest string the engine can hold: a JSON object (not streamable) with more characters is refused */
  maxStringLength: number;
}

const MiB = 1024 ** 2;

/**
 * 128 MiB for one row: some 30 million tokens, far past any max_length, and far below V8's longest string
 * (512 Mi characters), where the line reader used to crash with a stack trace.
 */
export const DEFAULT_MAX_ROW_LENGTH = 128 * MiB;

/** V8's String::kMaxLength on 64-bit hosts (Node's buffer.constants.MAX_STRING_LENGTH), Chrome's as well. */
export const V8_MAX_STRING_LENGTH = 2 ** 29 - 24;

export const DEFAULT_JSON_LIMITS: JsonLimits = { maxRowLength: DEFAULT_MAX_ROW_LENGTH, maxStringLength: V8_MAX_STRING_LENGTH };

/** the parts one after another (the part itself when there is one: no copy) */
export function concatBytes(parts: readonly Uint8Array[], length: number = parts.reduce((n, p) => n + p.length, 0)): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function countNewlines(bytes: Uint8Array): number {
  let n = 0;
  for (let at = bytes.indexOf(0x0a); at >= 0; at = bytes.indexOf(0x0a, at + 1)) n++;
  return n;
}

/** A file's text chunk by chunk, refused at the first byte that is not UTF-8 (named by byte offset and line). */
async function* fileText(path: string, chunks: ByteChunks): AsyncGenerator<string> {
  let carry: Uint8Array | null = null; // a character cut by the end of the previous chunk
  let offset = 0; // file offset of the first byte of `bytes` below
  let line = 1;
  for await (const chunk of chunks(() => ({ file: path, line }))) {
    const bytes: Uint8Array = carry ? concatBytes([carry, chunk], carry.length + chunk.length) : chunk;
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
export async function* readJsonLines(path: string, chunks: ByteChunks, limits: Pick<JsonLimits, 'maxRowLength'> = DEFAULT_JSON_LIMITS): AsyncGenerator<ReadItem> {
  let parts: Uint8Array[] = [];
  let length = 0;
  let overlong = false;
  let line = 1;
  let lineOffset = 0; // file offset of the current line's first byte
  let offset = 0; // file offset of the current chunk's first byte
  const finish = (): ReadItem | null => {
    const source = { file: path, line };
    if (overlong) return { error: new DataError(`the line is ${tooLong(limits.maxRowLength, 'bytes')}; is it one row per line?`, source), source };
    let bytes = concatBytes(parts, length);
    if (bytes[bytes.length - 1] === 0x0d) bytes = bytes.subarray(0, -1); // CRLF
    const decoded = decodeStrict(bytes);
    if ('invalidAt' in decoded) {
      return { error: new DataError(describeInvalidByte(bytes, decoded.invalidAt, lineOffset + decoded.invalidAt), source), source };
    }
    const text = line === 1 ? stripBom(decoded.text) : decoded.text;
    return text.trim() === '' ? null : parseObjectLine(text, source);
  };
  for await (const chunk of chunks(() => ({ file: path, line }))) {
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
async function* streamJsonArray(path: string, chunks: ByteChunks, limits: Pick<JsonLimits, 'maxRowLength'>): AsyncGenerator<ReadItem> {
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
  for await (let chunk of fileText(path, chunks)) {
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
async function peekJson(path: string, chunks: ByteChunks, limits: Pick<JsonLimits, 'maxRowLength'>):
  Promise<{ first: string; firstLine: string | null; moreLines: boolean }> {
  const parts: string[] = [];
  let length = 0;
  let first = '';
  let newlineAt = -1; // in the text read so far
  let moreLines = false;
  for await (let chunk of fileText(path, chunks)) {
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
export async function* readJson(path: string, chunks: ByteChunks, split: string | undefined,
  limits: JsonLimits = DEFAULT_JSON_LIMITS): AsyncGenerator<ReadItem> {
  const head = await peekJson(path, chunks, limits);
  if (head.first === '[') {
    yield* streamJsonArray(path, chunks, limits);
    return;
  }
  if (head.first === '{' && head.moreLines && head.firstLine !== null && !isInvalid(parseObjectLine(head.firstLine, { file: path }))) {
    yield* readJsonLines(path, chunks, limits);
    return;
  }
  const parts: string[] = [];
  let length = 0;
  for await (const chunk of fileText(path, chunks)) {
    length += chunk.length;
    if (length > limits.maxStringLength) {
      throw new DataError(
        `${path}: a JSON object over ${Math.floor(limits.maxStringLength / MiB)} Mi characters cannot be parsed whole; ` +
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
