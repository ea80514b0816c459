// LoRA settings as PEFT's LoraConfig names them, which linear modules they select, and the scaling they imply.
// Pure: no files (src/io/adapter.ts reads and writes adapter_config.json).
import type { ModelConfig, ModelType } from '../model/types.js';
import type { ParamSpec } from '../model/types.js';

export interface LoraSettings {
  /** rank of the update B A */
  r: number;
  /** PEFT's lora_alpha: the update is scaled by alpha / r (alpha / sqrt(r) with rsLoRA) */
  alpha: number;
  /** probability of zeroing an input element of the adapter path while training (PEFT's lora_dropout) */
  dropout: number;
  /** module names or suffixes, as PEFT's target_modules; ['all-linear'] = every projection inside the layers */
  targetModules: readonly string[];
  /** rank-stabilised LoRA (PEFT's use_rslora): scaling alpha / sqrt(r) */
  useRslora?: boolean;
}

/** The projections inside a decoder layer that adapters can wrap, by family. */
export const LORA_MODULES = {
  llama: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  gpt2: ['c_attn', 'c_proj', 'c_fc'],
} as const;

/** PEFT's default target_modules per model type (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING). */
const PEFT_DEFAULT_TARGETS: Record<ModelType, readonly string[]> = {
  llama: ['q_proj', 'v_proj'], mistral: ['q_proj', 'v_proj'], qwen2: ['q_proj', 'v_proj'], qwen3: ['q_proj', 'v_proj'],
  gpt2: ['c_attn'],
};

export function defaultTargetModules(config: ModelConfig): readonly string[] {
  return PEFT_DEFAULT_TARGETS[config.modelType];
}

/** The factor PEFT multiplies B A x by. */
export function loraScaling(s: Pick<LoraSettings, 'r' | 'alpha' | 'useRslora'>): number {
  return s.useRslora === true ? s.alpha / Math.sqrt(s.r) : s.alpha / s.r;
}

/** `q_proj,v_proj` (a CLI value) -> ['q_proj', 'v_proj'] */
export function parseTargetModules(list: string): string[] {
  const names = list.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (names.length === 0) throw new Error(`lora_target_modules '${list}' names no module; e.g. q_proj,k_proj,v_proj,o_proj`);
  return names;
}

export function checkLoraSettings(s: LoraSettings): void {
  if (!Number.isInteger(s.r) || s.r < 1) throw new Error(`LoRA rank r must be a positive integer, got ${s.r}`);
  if (!(s.alpha > 0)) throw new Error(`lora_alpha must be > 0, got ${s.alpha}`);
  if (!(s.dropout >= 0 && s.dropout < 1)) throw new Error(`lora_dropout must be in [0, 1), got ${s.dropout}`);
}

/** One adapted module: its name (e.g. model.layers.0.self_attn.q_proj) and the base weight's (out, in). */
export interface LoraTarget {
  module: string;
  inFeatures: number;
  outFeatures: number;
}

/**
 * The modules of a model that `targetModules` selects, in parameter-layout order. PEFT's rule for a list of
 * strings: a module matches a target when its name equals it or ends with '.' + target. Every target must match
 * something, so a typo is an error rather than a silently unadapted model.
 */
export function selectLoraTargets(config: ModelConfig, layout: readonly ParamSpec[], targetModules: readonly string[]): LoraTarget[] {
  const allowed: readonly string[] = LORA_MODULES[config.family];
  const linear = layout.filter((p) => p.name.endsWith('.weight') && p.shape.length === 2 &&
    allowed.includes(p.name.slice(0, -'.weight'.length).split('.').pop()!) && /\.(h|layers)\.\d+\./.test(p.name));
  const allLinear = targetModules.length === 1 && targetModules[0] === 'all-linear';
  const matches = (module: string, target: string): boolean => module === target || module.endsWith('.' + target);
  const out: LoraTarget[] = [];
  const used = new Set<string>();
  for (const p of linear) {
    const module = p.name.slice(0, -'.weight'.length);
    const hit = allLinear ? 'all-linear' : targetModules.find((t) => matches(module, t));
    if (hit === undefined) continue;
    used.add(hit);
    out.push({ module, inFeatures: p.shape[1]!, outFeatures: p.shape[0]! });
  }
  const unused = targetModules.filter((t) => !used.has(t));
  if (unused.length > 0) {
    throw new Error(`LoRA target module(s) ${unused.map((t) => `'${t}'`).join(', ')} match no projection of this ` +
      `${config.modelType} model; choose from ${allowed.join(', ')} (or all-linear)`);
  }
  return out;
}
