// `orpo merge --base DIR --adapter DIR --out DIR`: fold a PEFT LoRA adapter into its base model and write a
// plain Hugging Face model folder (config.json, safetensors, tokenizer files) that loads without peft.
import { mkdir, realpath } from 'node:fs/promises';
import { copyTokenizerFiles } from './checkpoint.js';
import { resolveCommandOptions } from './args.js';
import { loadAdapter, readAdapterConfig } from '../io/adapter.js';
import { loadModel, saveModel } from '../io/hf-model.js';
import { mergeLora } from '../lora/merge.js';
import { OptionError, type OptionTable } from '../train/options.js';

export interface MergeConfig {
  base: string | null;
  adapter: string | null;
  out: string | null;
  save_dtype: 'float32' | 'bfloat16';
}

export const MERGE_OPTIONS: OptionTable<MergeConfig> = {
  base: { type: 'path', default: null, doc: "base model folder (none: the adapter's base_model_name_or_path)" },
  adapter: { type: 'path', default: null, doc: 'PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors)' },
  out: { type: 'path', default: null, doc: 'where the merged model folder is written' },
  save_dtype: { type: 'enum', choices: ['float32', 'bfloat16'], default: 'float32', doc: 'dtype of the merged weights' },
};

export const MERGE_USAGE = `Usage: orpo merge --base DIR --adapter DIR --out DIR [--save-dtype float32|bfloat16]

Adds a LoRA adapter's update (W += lora_alpha/r * B A) to the base weights and writes a plain model folder.`;

export async function runMergeCommand(argv: readonly string[]): Promise<number> {
  const c = await resolveCommandOptions('merge', MERGE_USAGE, argv, MERGE_OPTIONS);
  if (c === null) return 0;
  if (c.adapter === null) throw new OptionError("missing required option 'adapter' (--adapter)");
  if (c.out === null) throw new OptionError("missing required option 'out' (--out)");
  const recorded = (await readAdapterConfig(c.adapter)).baseModelNameOrPath;
  const base = c.base ?? recorded;
  if (base === null) throw new OptionError(`${c.adapter}: adapter_config.json names no base_model_name_or_path; give --base DIR`);
  // writing the merged model over its own base (or over the adapter) would destroy what it was made from
  for (const [flag, dir] of [['--base', base], ['--adapter', c.adapter]] as const) {
    if (await sameFolder(c.out, dir)) throw new OptionError(`--out ${c.out} is the ${flag} folder; write the merged model to a new folder`);
  }
  if (c.base !== null && recorded !== null && !(await sameFolder(c.base, recorded))) {
    process.stderr.write(`warning: ${c.adapter} was trained on ${recorded} (adapter_config.json's base_model_name_or_path), ` +
      `but --base is ${c.base}; the merge is only right if they hold the same weights\n`);
  }
  const model = await loadModel(base);
  const adapters = await loadAdapter(c.adapter, model);
  mergeLora(adapters);
  await mkdir(c.out, { recursive: true });
  await saveModel(model, c.out, { dtype: c.save_dtype === 'bfloat16' ? 'BF16' : 'F32' });
  // tokenizer files: the base's, then any the adapter folder carries (a training run may have added tokens)
  await copyTokenizerFiles(base, c.out);
  await copyTokenizerFiles(c.adapter, c.out);
  process.stdout.write(`merged ${adapters.layers.length} LoRA module(s) (r=${adapters.settings.r}, scaling ${adapters.scaling}) ` +
    `from ${c.adapter} into ${base} -> ${c.out}\n`);
  return 0;
}

/** whether two paths name the same folder (after resolving links); a folder that does not exist yet is nobody's */
async function sameFolder(a: string, b: string): Promise<boolean> {
  const real = async (p: string): Promise<string | null> => realpath(p).catch(() => null);
  const [ra, rb] = await Promise.all([real(a), real(b)]);
  return ra !== null && ra === rb;
}
