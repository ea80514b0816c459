// `orpo export gguf --model DIR --out FILE.gguf [--dtype f32|f16|bf16|q8_0] [--adapter DIR]` and
// `orpo export gguf-lora --adapter DIR --out ADAPTER.gguf [--model BASE]`: GGUF files for llama.cpp,
// node-llama-cpp, Ollama and LM Studio, written by src/io/gguf.
import { resolveCommandOptions } from './args.js';
import { exportAdapterFolderToGguf, exportModelFolderToGguf } from '../io/gguf/export.js';
import { GGUF_DTYPES, type GgufDtype } from '../io/gguf/architecture.js';
import { OptionError, suggestOption, type OptionTable } from '../train/options.js';

interface ExportGgufConfig {
  model: string | null;
  out: string | null;
  dtype: GgufDtype;
  adapter: string | null;
}

const GGUF_OPTIONS: OptionTable<ExportGgufConfig> = {
  model: { type: 'path', default: null, doc: 'Hugging Face model folder (config.json, safetensors, tokenizer.json), e.g. a training run or checkpoint; a LoRA run means its base with the adapter merged' },
  out: { type: 'path', default: null, doc: 'the GGUF file to write (replaced atomically)' },
  dtype: { type: 'enum', choices: [...GGUF_DTYPES], default: 'f16', doc: 'storage of the weight matrices (norms and biases stay f32)' },
  adapter: { type: 'path', default: null, doc: 'PEFT LoRA adapter folder to merge into the weights on the way' },
};

interface ExportLoraConfig {
  adapter: string | null;
  out: string | null;
  model: string | null;
}

const LORA_OPTIONS: OptionTable<ExportLoraConfig> = {
  adapter: { type: 'path', default: null, doc: 'PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors)' },
  out: { type: 'path', default: null, doc: 'the GGUF adapter file to write' },
  model: { type: 'path', default: null, doc: "base model folder (default: the adapter's base_model_name_or_path); only its config.json is read" },
};

const USAGE = `Usage: orpo export gguf --model DIR --out FILE.gguf [--dtype f32|f16|bf16|q8_0] [--adapter DIR]
       orpo export gguf-lora --adapter DIR --out ADAPTER.gguf [--model BASE_DIR]

Writes GGUF files that llama.cpp (and node-llama-cpp, Ollama, LM Studio) run: the model with its tokenizer and
chat template, or a LoRA adapter to apply over the base model's GGUF.`;

const GGUF_USAGE = `Usage: orpo export gguf --model DIR --out FILE.gguf [--dtype f32|f16|bf16|q8_0] [--adapter DIR]`;
const LORA_USAGE = `Usage: orpo export gguf-lora --adapter DIR --out ADAPTER.gguf [--model BASE_DIR]`;

function required<T>(value: T | null, name: string): T {
  if (value === null) throw new OptionError(`missing required option '${name}' (--${name})`);
  return value;
}

export async function runExport(argv: readonly string[]): Promise<number> {
  const [format, ...rest] = argv;
  if (format === undefined || format === '--help' || format === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return format === undefined ? 2 : 0;
  }
  if (format === 'gguf') {
    const c = await resolveCommandOptions('export gguf', GGUF_USAGE, rest, GGUF_OPTIONS);
    if (c === null) return 0;
    const summary = await exportModelFolderToGguf(required(c.model, 'model'), required(c.out, 'out'), { dtype: c.dtype, adapterDir: c.adapter });
    const merged = summary.mergedModules > 0 ? ` with ${summary.mergedModules} LoRA module(s) merged into ${summary.baseDir}` : '';
    process.stdout.write(`wrote ${summary.file} (${c.dtype}, ${summary.tensors} tensors)${merged}\n`);
    return 0;
  }
  if (format === 'gguf-lora') {
    const c = await resolveCommandOptions('export gguf-lora', LORA_USAGE, rest, LORA_OPTIONS);
    if (c === null) return 0;
    const summary = await exportAdapterFolderToGguf(required(c.adapter, 'adapter'), required(c.out, 'out'), { baseDir: c.model });
    process.stdout.write(`wrote ${summary.file} (LoRA adapter, ${summary.tensors / 2} module(s), base ${summary.baseDir})\n`);
    return 0;
  }
  const hint = suggestOption(format, ['gguf', 'gguf-lora']);
  throw new OptionError(`unknown export format '${format}'${hint === null ? '' : ` (did you mean ${hint}?)`}; formats: gguf, gguf-lora`);
}
