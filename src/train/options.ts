// One table per command describes every option once: its snake_case name (as in TRL / config files), type,
// default, one-line doc and, where the paper has one, its symbol. The same table drives argv parsing
// (kebab-case flags), config files, validation and `--help`, so they cannot drift apart.
// Pure: no argv, no files (src/cli reads those and hands raw values here).

export type OptionValue = string | number | boolean | null;

interface SpecBase {
  doc: string;
  /** the symbol in Hong et al. 2024 (or the usual maths), shown in --help */
  symbol?: string;
  /** a section heading in --help */
  group?: string;
  /** `--flag` given without a value means this (e.g. `--resume` = the latest checkpoint) */
  implicit?: string;
}
export interface NumberSpec extends SpecBase {
  type: 'int' | 'float';
  default: number | null;
  min?: number;
  /** min itself is not allowed (e.g. learning_rate > 0) */
  minExclusive?: boolean;
  max?: number;
}
export interface StringSpec extends SpecBase {
  type: 'string' | 'path';
  default: string | null;
}
export interface BoolSpec extends SpecBase {
  type: 'bool';
  /** null: unset, the consumer decides (e.g. fused_loss by the logits' size) */
  default: boolean | null;
}
export interface EnumSpec extends SpecBase {
  type: 'enum';
  choices: readonly string[];
  default: string | null;
}
export type OptionSpec = NumberSpec | StringSpec | BoolSpec | EnumSpec;

/** Each config field gets exactly one spec (the compiler checks that none is missing or extra). */
export type OptionTable<C> = { readonly [K in keyof C]-?: OptionSpec };

/**
 * Another program's name for an option (TRL's, transformers'): `--model-name-or-path` for `model`. `apply` turns
 * its raw value into this table's raw values (`set`, which later layers override as usual, and `fill`, applied
 * after every layer only where the option is still unset), or throws an OptionError saying why it does not apply.
 */
export interface OptionAlias {
  /** shown in --help */
  doc: string;
  /** a flag given without a value means this (TRL's booleans) */
  implicit?: string;
  apply(raw: unknown, where: string): { set?: Record<string, unknown>; fill?: Record<string, unknown> };
}
export type OptionAliases = Readonly<Record<string, OptionAlias>>;

/** `key` names an entry of `record` itself (not `constructor`, `toString` or `__proto__` from Object.prototype). */
export const ownKey = (record: object, key: string): boolean => Object.prototype.hasOwnProperty.call(record, key);

export class OptionError extends Error {
  override name = 'OptionError';
}

export const toKebab = (key: string): string => key.replace(/_/g, '-');
export const toSnake = (flag: string): string => flag.replace(/-/g, '_');

function describeType(spec: OptionSpec): string {
  if (spec.type === 'enum') return spec.choices.join('|');
  if (spec.type === 'int') return 'integer';
  if (spec.type === 'float') return 'number';
  return spec.type === 'bool' ? 'true|false' : spec.type;
}

/**
 * One raw value (a string from argv, or a YAML/JSON scalar) -> a checked value of the option's type.
 * `where` says where it came from (e.g. `--beta` or `train.yaml: beta`) for the error message.
 */
export function coerceOption(key: string, spec: OptionSpec, raw: unknown, where: string): OptionValue {
  const bad = (why: string): OptionError =>
    new OptionError(`${where}: invalid value ${JSON.stringify(raw)} for '${key}': ${why}`);
  if (raw === null || raw === undefined || raw === 'null' || raw === 'none' || raw === 'None') {
    if (spec.default === null) return null;
    throw bad(`expected ${describeType(spec)}`);
  }
  switch (spec.type) {
    case 'int':
    case 'float': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
      if (!Number.isFinite(n)) throw bad(`expected ${describeType(spec)}`);
      if (spec.type === 'int' && !Number.isInteger(n)) throw bad('expected an integer');
      if (spec.min !== undefined && (n < spec.min || (spec.minExclusive === true && n === spec.min))) {
        throw bad(`must be ${spec.minExclusive === true ? '>' : '>='} ${spec.min}`);
      }
      if (spec.max !== undefined && n > spec.max) throw bad(`must be <= ${spec.max}`);
      return n;
    }
    case 'bool':
      if (raw === true || raw === 'true' || raw === '1' || raw === 'yes') return true;
      if (raw === false || raw === 'false' || raw === '0' || raw === 'no') return false;
      throw bad('expected true or false');
    case 'enum':
      if (typeof raw === 'string' && spec.choices.includes(raw)) return raw;
      throw bad(`expected one of ${spec.choices.join(', ')}`);
    case 'string':
    case 'path':
      if (typeof raw === 'string' && raw !== '') return raw;
      if (typeof raw === 'number') return String(raw);
      throw bad(`expected a ${spec.type}`);
  }
}

/** The defaults of a table, as a config object. */
export function defaultsOf<C>(table: OptionTable<C>): C {
  const out: Record<string, OptionValue> = {};
  for (const [key, spec] of Object.entries(table) as [string, OptionSpec][]) out[key] = spec.default;
  return out as C;
}

/** Closest known option name, for "did you mean" hints (edit distance <= 3). */
export function suggestOption(key: string, keys: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = 4;
  for (const k of keys) {
    const d = editDistance(key, k);
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}

/**
 * Merges layers of raw values (defaults <- config file <- flags, later wins) into a checked config.
 * Each layer maps snake_case keys to raw values and says where they came from; `aliases` maps other programs'
 * names (TRL's) onto the table's.
 */
export function resolveOptions<C>(
  table: OptionTable<C>,
  layers: readonly { source: string; values: Record<string, unknown>; flagStyle?: boolean }[],
  aliases: OptionAliases = {},
): C {
  const specs = table as Record<string, OptionSpec>;
  const keys = Object.keys(table);
  const config = defaultsOf(table) as Record<string, OptionValue>;
  const fills: { key: string; raw: unknown; where: string }[] = [];
  // a file names itself; command-line flags need no source (the command's name leads its error line already)
  const where = (layer: { source: string; flagStyle?: boolean }): string => (layer.flagStyle === true ? '' : `${layer.source}: `);
  const setOne = (key: string, raw: unknown, at: string): void => {
    config[key] = coerceOption(key, specs[key]!, raw, at);
  };
  for (const layer of layers) {
    for (const [key, raw] of Object.entries(layer.values)) {
      const name = layer.flagStyle === true ? `--${toKebab(key)}` : key;
      if (ownKey(specs, key)) {
        setOne(key, raw, `${where(layer)}${name}`);
        continue;
      }
      if (ownKey(aliases, key)) {
        const { set = {}, fill = {} } = aliases[key]!.apply(raw, `${where(layer)}${name}`);
        for (const [k, v] of Object.entries(set)) setOne(k, v, `${where(layer)}${name}`);
        for (const [k, v] of Object.entries(fill)) fills.push({ key: k, raw: v, where: `${where(layer)}${name}` });
        continue;
      }
      const hint = suggestOption(key, keys);
      const shown = hint === null ? '' : ` (did you mean ${layer.flagStyle === true ? `--${toKebab(hint)}` : hint}?)`;
      throw new OptionError(`${where(layer)}unknown option '${name}'${shown}; see --help for the list`);
    }
  }
  for (const f of fills) if (config[f.key] === specs[f.key]!.default) setOne(f.key, f.raw, f.where);
  return config as C;
}

function formatDefault(spec: OptionSpec): string {
  if (spec.default === null) return 'none';
  return String(spec.default);
}

/** `--help` text for a table: one line per option, grouped, with type, default and symbol; then the aliases. */
export function formatHelp<C>(table: OptionTable<C>, width = 100, aliases: OptionAliases = {}): string {
  const rows: { group: string; flag: string; doc: string }[] = [];
  for (const [key, spec] of Object.entries(table) as [string, OptionSpec][]) {
    const flag = spec.type === 'bool' ? `--${toKebab(key)}` : `--${toKebab(key)} <${describeType(spec)}>`;
    const symbol = spec.symbol === undefined ? '' : ` [${spec.symbol}]`;
    const implicit = spec.implicit === undefined ? '' : `; alone: ${spec.implicit}`;
    rows.push({ group: spec.group ?? 'Options', flag, doc: `${spec.doc}${symbol} (default: ${formatDefault(spec)}${implicit})` });
  }
  const flagWidth = Math.min(44, Math.max(...rows.map((r) => r.flag.length)) + 2);
  // each group once, in the order groups first appear (tables merged from several modules interleave them)
  const groupOrder = [...new Set(rows.map((r) => r.group))];
  rows.sort((x, y) => groupOrder.indexOf(x.group) - groupOrder.indexOf(y.group));
  const lines: string[] = [];
  let group = '';
  for (const r of rows) {
    if (r.group !== group) {
      group = r.group;
      lines.push('', `${group}:`);
    }
    const pad = r.flag.length + 2 > flagWidth ? `\n  ${' '.repeat(flagWidth)}` : ' '.repeat(flagWidth - r.flag.length);
    lines.push(`  ${r.flag}${pad}${wrap(r.doc, width - flagWidth - 2, flagWidth + 2)}`);
  }
  const aliasRows = Object.entries(aliases);
  if (aliasRows.length > 0) lines.push('', "TRL's and transformers' names (also in config files):");
  for (const [key, alias] of aliasRows) {
    const flag = `--${toKebab(key)}`;
    const pad = flag.length + 2 > flagWidth ? `\n  ${' '.repeat(flagWidth)}` : ' '.repeat(flagWidth - flag.length);
    lines.push(`  ${flag}${pad}${wrap(alias.doc, width - flagWidth - 2, flagWidth + 2)}`);
  }
  return lines.join('\n');
}

function wrap(text: string, width: number, indent: number): string {
  const words = text.split(' ');
  const lines: string[] = [];
  let line = '';
  for (const w of words) {
    if (line !== '' && line.length + 1 + w.length > width) {
      lines.push(line);
      line = w;
    } else line = line === '' ? w : `${line} ${w}`;
  }
  lines.push(line);
  return lines.join(`\n${' '.repeat(indent)}`);
}

/** The same option with another default (e.g. the demo's tuned learning rate). */
export function withDefault(spec: OptionSpec, value: OptionValue): OptionSpec {
  return { ...spec, default: value } as OptionSpec;
}
