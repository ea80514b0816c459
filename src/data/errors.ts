// One error type for everything a user's data or model folder can get wrong. It carries where the problem is
// (file, line for line-oriented files, row for JSON arrays and Parquet; both shown counting from 1, as editors
// count lines and `orpo data show` counts rows) so the CLI can print
// "file:line: what is wrong — what to do" and --skip-invalid can count the row instead of stopping.

export interface RowSource {
  file: string;
  /** 1-based line in a JSON Lines file */
  line?: number;
  /** 0-based row index in a JSON array or a Parquet file (shown as `row index + 1`) */
  row?: number;
}

export function describeSource(source: RowSource): string {
  if (source.line !== undefined) return `${source.file}:${source.line}`;
  if (source.row !== undefined) return `${source.file} row ${source.row + 1}`;
  return source.file;
}

export class DataError extends Error {
  readonly source: RowSource | null;
  constructor(message: string, source: RowSource | null = null) {
    super(source ? `${describeSource(source)}: ${message}` : message);
    this.name = 'DataError';
    this.source = source;
  }
}

/**
 * A library's error message, cut short: they quote what they failed on (a token type, a column name), and that
 * comes from the file, so it may be megabytes long.
 */
export function briefly(err: unknown, max = 200): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.length > max ? `${message.slice(0, max)}...` : message;
}
