// argv and config files -> raw option values keyed by snake_case name, checked against the command's table
// (src/train/options.ts does the typing and validation). Flags: `--name value`, `--name=value`, `--flag` /
// `--no-flag` for booleans, `--config FILE` (YAML or JSON) whose values the flags override.

import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import {
  OptionError, formatHelp, ownKey, resolveOptions, suggestOption, toKebab, toSnake,
  type OptionAliases, type OptionSpec, type OptionTable,
} from '../train/options.js';

export interface ParsedArgs {
  /** flag values by snake_case name, as strings (booleans as 'true'/'false') */
  flags: Record<string, string>;
  help: boolean;
  config: string | null;
}

export interface CommandOptionsOpts {
  allowConfig?: boolean;
  /** TRL's names for the table's options */
  aliases?: OptionAliases;
}

export function parseArgv<C>(argv: readonly string[], table: OptionTable<C>, opts: CommandOptionsOpts = {}): ParsedArgs {
  const specs = table as Record<string, OptionSpec>;
  const aliases = opts.aliases ?? {};
  const known = Object.keys(specs);
  // no prototype: `--constructor` or `--__proto__` must be unknown options, not "given twice"
  const flags: Record<string, string> = Object.create(null) as Record<string, string>;
  let help = false;
  let config: string | null = null;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') {
      help = true;
      continue;
    }
    if (!arg.startsWith('--')) {
      throw new OptionError(`unexpected argument '${arg}'; options are written --name value (see --help)`);
    }
    const eq = arg.indexOf('=');
    const flag = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    let value: string | undefined = eq < 0 ? undefined : arg.slice(eq + 1);
    if (flag === 'config' && opts.allowConfig === true) {
      value ??= argv[++i];
      if (value === undefined) throw new OptionError('--config needs a file (YAML or JSON)');
      config = value;
      continue;
    }
    let key = toSnake(flag);
    let spec = ownKey(specs, key) ? specs[key] : undefined;
    if (spec === undefined && key.startsWith('no_') && ownKey(specs, key.slice(3)) && specs[key.slice(3)]!.type === 'bool' && value === undefined) {
      key = key.slice(3);
      spec = specs[key];
      value = 'false';
    }
    const alias = spec === undefined && ownKey(aliases, key) ? aliases[key]! : undefined;
    if (spec === undefined && alias === undefined) {
      const hint = suggestOption(key, known);
      throw new OptionError(`unknown option '--${flag}'${hint === null ? '' : ` (did you mean --${toKebab(hint)}?)`}; see --help`);
    }
    if (value === undefined) {
      const next = argv[i + 1];
      const nextIsValue = next !== undefined && !next.startsWith('--');
      const implicit = spec?.implicit ?? alias?.implicit;
      if (spec?.type === 'bool') value = nextIsValue && /^(true|false|1|0|yes|no)$/.test(next) ? argv[++i]! : 'true';
      else if (nextIsValue) value = argv[++i]!;
      else if (implicit !== undefined) value = implicit;
      else throw new OptionError(`option '--${flag}' needs a value`);
    }
    if (ownKey(flags, key)) throw new OptionError(`option '--${flag}' is given twice`);
    flags[key] = value;
  }
  return { flags, help, config };
}

/** A YAML or JSON config file -> its top-level mapping (snake_case keys). */
export async function readConfigFile(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new OptionError(`config file ${file} cannot be read (does it exist?)`);
  }
  let data: unknown;
  try {
    data = extname(file).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new OptionError(`config file ${file} is not valid ${extname(file) === '.json' ? 'JSON' : 'YAML'}: ${(e as Error).message}`);
  }
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data)) throw new OptionError(`config file ${file} must hold a mapping of option: value`);
  const values = data as Record<string, unknown>;
  for (const [key, value] of Object.entries(values)) {
    if (typeof value === 'object' && value !== null) {
      throw new OptionError(`config file ${file}: option '${key}' must be a single value, not a list or mapping`);
    }
  }
  return values;
}

/** argv (+ its --config file) -> a checked config, or null when --help was asked (the help is printed). */
export async function resolveCommandOptions<C>(command: string, usage: string, argv: readonly string[], table: OptionTable<C>,
  opts: CommandOptionsOpts & { base?: { source: string; values: Record<string, unknown> } } = {}): Promise<C | null> {
  const parsed = parseArgv(argv, table, opts);
  if (parsed.help) {
    process.stdout.write(`${usage}\n${formatHelp(table, 100, opts.aliases)}\n${opts.allowConfig === true ? '\n  --config <file>  YAML or JSON file of option: value (snake_case); flags override it\n' : ''}`);
    return null;
  }
  const layers: { source: string; values: Record<string, unknown>; flagStyle?: boolean }[] = [];
  if (opts.base !== undefined) layers.push(opts.base);
  if (parsed.config !== null) layers.push({ source: parsed.config, values: await readConfigFile(parsed.config) });
  layers.push({ source: `orpo ${command}`, values: parsed.flags, flagStyle: true });
  return resolveOptions(table, layers, opts.aliases);
}
