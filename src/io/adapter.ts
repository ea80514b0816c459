// LoRA adapters in PEFT's on-disk format, so Python `PeftModel.from_pretrained(base, dir)` loads what orpo-ts
// trains and orpo-ts loads what PEFT trains: adapter_config.json + adapter_model.safetensors. The files' bytes are
// built in src/io/adapter-files.ts (no file system; the page's download uses it too); this module writes them and
// reads and checks adapters from folders.
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DecoderBase } from '../model/base.js';
import { LoraAdapters } from '../lora/adapters.js';
import { nestedRepetition } from '../data/tokenizer-checks.js';
import { checkLoraSettings, LORA_MODULES, selectLoraTargets, type LoraSettings } from '../lora/config.js';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, adapterFolderBytes, peftTensorName } from './adapter-files.js';
import { writeFileAtomically } from './atomic-file.js';
import {
  describeUntrusted, quoteUntrusted, readSafetensorsHeader, readTensorF32, shortenUntrusted,
  type SafetensorsWriteDtype, type TensorInfo,
} from './safetensors.js';

export { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, adapterConfigJson, adapterTensors, peftTensorName } from './adapter-files.js';

const MAX_TARGET_CHARS = 1000;

/** Writes adapter_config.json + adapter_model.safetensors into dir (created if needed), each replaced atomically. */
export async function saveAdapter(adapters: LoraAdapters, dir: string,
  opts: { baseModelNameOrPath?: string | null; dtype?: SafetensorsWriteDtype } = {}): Promise<void> {
  await mkdir(dir, { recursive: true });
  // the weights first, as before the split: a folder whose config is present has its weights in place too
  for (const [name, bytes] of adapterFolderBytes(adapters, opts)) await writeFileAtomically(join(dir, name), bytes);
}

export interface AdapterConfig {
  settings: LoraSettings;
  baseModelNameOrPath: string | null;
  raw: Record<string, unknown>;
}

function isEmpty(v: unknown): boolean {
  return v === undefined || v === null || (typeof v === 'object' && Object.keys(v).length === 0);
}

/** Reads and checks adapter_config.json; features orpo-ts does not implement are errors, not silently ignored. */
export async function readAdapterConfig(dir: string): Promise<AdapterConfig> {
  const file = join(dir, ADAPTER_CONFIG_FILE);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>; // checked to be an object below
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? `${file}: not found; a PEFT adapter folder holds adapter_config.json and adapter_model.safetensors`
      : `${file}: invalid JSON (${(e as Error).message})`);
  }
  const bad = (why: string): Error => new Error(`${file}: ${why}`);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad(`is ${describeUntrusted(raw)}, not a JSON object`);
  if (raw['peft_type'] !== 'LORA') throw bad(`peft_type is ${describeUntrusted(raw['peft_type'])}; only LORA adapters are supported`);
  const r = raw['r'];
  if (typeof r !== 'number' || !Number.isInteger(r) || r < 1) throw bad(`r must be a positive integer, got ${describeUntrusted(r)}`);
  const alpha = raw['lora_alpha'] ?? 8;
  if (typeof alpha !== 'number') throw bad(`lora_alpha must be a number, got ${describeUntrusted(alpha)}`);
  const dropout = raw['lora_dropout'] ?? 0;
  if (typeof dropout !== 'number') throw bad(`lora_dropout must be a number, got ${describeUntrusted(dropout)}`);
  if ((raw['bias'] ?? 'none') !== 'none') throw bad(`bias ${describeUntrusted(raw['bias'])} is not supported (only "none")`);
  if (raw['use_dora'] === true) throw bad('DoRA adapters (use_dora) are not supported');
  for (const key of ['rank_pattern', 'alpha_pattern', 'modules_to_save', 'layers_to_transform', 'layer_replication']) {
    if (!isEmpty(raw[key])) throw bad(`'${key}' is set; orpo-ts supports one r and lora_alpha for every targeted module`);
  }
  const targets = raw['target_modules'];
  let targetModules: string[];
  if (Array.isArray(targets) && targets.every((t) => typeof t === 'string') && targets.length > 0) targetModules = targets as string[];
  else if (typeof targets === 'string') targetModules = [targets];
  else throw bad(`target_modules must be a list of module names or a string, got ${describeUntrusted(targets)}`);
  // module names are dotted identifiers well under this; a longer one is no module of any model
  const overlong = targetModules.find((t) => t.length > MAX_TARGET_CHARS);
  if (overlong !== undefined) throw bad(`target_modules entry ${quoteUntrusted(overlong)} is longer than ${MAX_TARGET_CHARS} characters`);
  const base = raw['base_model_name_or_path'];
  return {
    settings: { r, alpha, dropout, targetModules, useRslora: raw['use_rslora'] === true },
    baseModelNameOrPath: typeof base === 'string' ? base : null,
    raw,
  };
}

/**
 * PEFT stores a string target_modules as a regular expression that must match a whole module name; lists and
 * 'all-linear' need no translation. Returns the settings with the regex resolved to this model's module names.
 */
function resolveRegexTargets(model: DecoderBase, settings: LoraSettings, configFile: string): LoraSettings {
  const t = settings.targetModules;
  if (t.length !== 1 || t[0] === 'all-linear' || (LORA_MODULES[model.config.family] as readonly string[]).includes(t[0]!)) return settings;
  // the tokenizer's check: a repeated group holding a repetition, e.g. (.*)*, backtracks exponentially when a
  // module name does not match ("(.*)*x" never finished on one 30-character name)
  const nested = nestedRepetition(t[0]!);
  if (nested !== null) {
    throw new Error(`${configFile}: target_modules regex ${quoteUntrusted(t[0]!)} repeats a group that itself repeats ` +
      `(${quoteUntrusted(nested)}), which can take exponential time to match; write the module names as a list`);
  }
  let re: RegExp;
  try {
    re = new RegExp(`^(?:${t[0]!})$`);
  } catch (e) {
    throw new Error(`${configFile}: target_modules ${quoteUntrusted(t[0]!)} is not a valid regular expression (${(e as Error).message.slice(0, 200)})`);
  }
  const candidates = selectLoraTargets(model.config, model.layout, ['all-linear']).map((x) => x.module);
  const hits = candidates.filter((m) => re.test(m));
  if (hits.length === 0) {
    throw new Error(`${configFile}: target_modules regex ${quoteUntrusted(t[0]!)} matches no projection of this ${model.config.modelType} model`);
  }
  return { ...settings, targetModules: hits };
}

// `...lora_A.default.weight` (a raw state_dict with the adapter name) means the same as PEFT's saved name
function normaliseTensorName(name: string): string {
  return name.replace(/\.lora_([AB])\.[^.]+\.weight$/, '.lora_$1.weight');
}

/**
 * Loads a PEFT LoRA adapter folder onto a model (which must be the base it was trained on) and attaches it:
 * every targeted module's lora_A and lora_B must be present with the expected shapes (F32, F16 or BF16).
 */
export async function loadAdapter(dir: string, model: DecoderBase): Promise<LoraAdapters> {
  const config = await readAdapterConfig(dir);
  const configFile = join(dir, ADAPTER_CONFIG_FILE);
  const settings = resolveRegexTargets(model, config.settings, configFile);
  let targets;
  try {
    checkLoraSettings(settings);
    targets = selectLoraTargets(model.config, model.layout, settings.targetModules);
  } catch (e) {
    // r, lora_alpha or lora_dropout out of range, or target_modules that match nothing: the fault is in
    // adapter_config.json, whose values the message quotes
    throw new Error(`${configFile}: ${shortenUntrusted((e as Error).message, 600)}`);
  }
  const file = join(dir, ADAPTER_WEIGHTS_FILE);
  let header;
  try {
    header = await readSafetensorsHeader(file);
  } catch (e) {
    if (/no such file/.test((e as Error).message)) {
      throw new Error(`${file}: not found (adapter_model.bin pickles are not read; re-save the adapter with safe_serialization=True)`);
    }
    throw e;
  }
  // Every factor is matched to the file's header before the adapters' buffers are allocated: r comes from an
  // untrusted adapter_config.json, and a huge one must fail on the shapes, not in the allocation.
  const byName = new Map([...header.tensors.values()].map((t) => [normaliseTensorName(t.name), t]));
  const planned: { module: string; factor: 'A' | 'B'; info: TensorInfo }[] = [];
  const r = settings.r;
  for (const t of targets) {
    for (const [factor, shape] of [['A', [r, t.inFeatures]], ['B', [t.outFeatures, r]]] as const) {
      const name = peftTensorName(t.module, factor);
      const info = byName.get(name);
      if (!info) throw new Error(`${file}: tensor '${name}' is missing; adapter_config.json targets ${t.module}`);
      if (info.shape.length !== 2 || info.shape[0] !== shape[0] || info.shape[1] !== shape[1]) {
        throw new Error(`${file}: tensor '${name}' has shape [${info.shape}] but r=${r} and the base model imply [${shape}]; ` +
          'is this adapter for a different base model?');
      }
      planned.push({ module: t.module, factor, info });
    }
  }
  const expected = new Set(planned.map((p) => peftTensorName(p.module, p.factor)));
  const extra = [...byName.keys()].filter((n) => !expected.has(n));
  if (extra.length > 0) {
    throw new Error(`${file}: ${extra.length} tensor(s) have no place in this model with adapter_config.json's target_modules: ` +
      `${extra.slice(0, 6).map((n) => shortenUntrusted(n)).join(', ')}${extra.length > 6 ? ', ...' : ''}`);
  }
  const adapters = new LoraAdapters(model, settings);
  for (const { module, factor, info } of planned) {
    (factor === 'A' ? adapters.A(module) : adapters.B(module)).set(await readTensorF32(info));
  }
  return adapters.attach();
}
