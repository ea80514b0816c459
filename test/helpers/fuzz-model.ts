// Model-file fuzz cases for the fuzz runner (test/helpers/fuzz.ts): safetensors headers and bodies, config.json,
// model.safetensors.index.json and PEFT adapters, mutated from tiny valid model folders. Each mutant is written to
// its own file or folder and yielded as a case for a target of fuzz-model-targets.ts (a separate module: the
// worker imports the targets while fuzz.ts is still being evaluated, so a targets module must not import fuzz.ts).
// A longer run (bench): runFuzzCases(modelFuzzCases(dir, seed), { module: MODEL_FUZZ_TARGETS, deadline }).
//
// A folder case's error must name the folder (every message does: the config, a weight file or the folder itself).

import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, saveAdapter } from '../../src/io/adapter.js';
import { saveModel } from '../../src/io/hf-model.js';
import { WEIGHTS_INDEX_FILE } from '../../src/io/model-files.js';
import { LoraAdapters } from '../../src/lora/adapters.js';
import { createModel } from '../../src/model/create.js';
import { concatBytes, mutateBytes, mutateJson, Rng, type FuzzCase, type Json } from './fuzz.js';
import { TINY_LLAMA } from './fuzz-model-targets.js';

const TINY_GPT2 = { model_type: 'gpt2', vocab_size: 13, n_embd: 8, n_layer: 1, n_head: 2, n_positions: 16, layer_norm_epsilon: 1e-5 };

interface Seeds {
  /** valid model folders to mutate: single F32 file, BF16 shards with an index, GPT-2 */
  single: string;
  sharded: string;
  gpt2: string;
  /** a LoRA adapter of the single-file model */
  adapter: string;
}

async function writeSeeds(workDir: string): Promise<Seeds> {
  const seeds: Seeds = {
    single: join(workDir, 'seed-single'), sharded: join(workDir, 'seed-sharded'), gpt2: join(workDir, 'seed-gpt2'),
    adapter: join(workDir, 'seed-adapter'),
  };
  const model = createModel(TINY_LLAMA, { seed: 1 });
  await saveModel(model, seeds.single);
  const lora = { r: 2, alpha: 4, dropout: 0, targetModules: ['q_proj', 'v_proj'], useRslora: false };
  await saveAdapter(new LoraAdapters(model, lora, { seed: 4 }), seeds.adapter);
  await saveModel(createModel(TINY_LLAMA, { seed: 2 }), seeds.sharded, { dtype: 'BF16', maxShardBytes: 200 });
  await saveModel(createModel(TINY_GPT2, { seed: 3 }), seeds.gpt2);
  return seeds;
}

/** A safetensors file split into its header's JSON and its data section. */
function splitSafetensors(bytes: Uint8Array): { header: Json; data: Uint8Array } {
  const length = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length))) as Json;
  return { header, data: bytes.subarray(8 + length) };
}

/** A header (re-serialised, so mutations of structure reach the reader instead of failing as bad JSON) and data. */
function joinSafetensors(header: Json, data: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const length = new Uint8Array(8);
  new DataView(length.buffer).setBigUint64(0, BigInt(json.length), true);
  return concatBytes(length, json, data);
}

export type ModelFuzzKind = 'safetensors bytes' | 'safetensors header' | 'config.json' | 'model.safetensors.index.json' | 'model folder weights' | 'adapter';

/** The share of each kind of case: byte mutants are cheapest, folders exercise the most code. */
export const KIND_WEIGHTS: readonly [ModelFuzzKind, number][] = [
  ['safetensors bytes', 3], ['safetensors header', 3], ['config.json', 3], ['model.safetensors.index.json', 2], ['model folder weights', 1], ['adapter', 2],
];

/** The compiled module whose exports the cases name. */
export const MODEL_FUZZ_TARGETS = new URL('./fuzz-model-targets.js', import.meta.url);

/**
 * Mutated model files under workDir, one case each, seeded: the same seed gives the same cases. `count` cases
 * (endless when omitted: the runner's deadline then ends the run).
 */
export async function* modelFuzzCases(workDir: string, seed: number, count = Infinity): AsyncGenerator<FuzzCase<string>> {
  const seeds = await writeSeeds(workDir);
  const singleWeights = readFileSync(join(seeds.single, 'model.safetensors'));
  const shardNames = (JSON.parse(readFileSync(join(seeds.sharded, WEIGHTS_INDEX_FILE), 'utf8')) as { weight_map: Record<string, string> }).weight_map;
  const shardFiles = [...new Set(Object.values(shardNames))].sort();
  const weightFiles = [singleWeights, readFileSync(join(seeds.gpt2, 'model.safetensors')),
    ...shardFiles.map((f) => readFileSync(join(seeds.sharded, f)))];
  const configs: [string, Json][] = [seeds.single, seeds.sharded, seeds.gpt2]
    .map((dir) => [dir, JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Json]);
  const index = JSON.parse(readFileSync(join(seeds.sharded, WEIGHTS_INDEX_FILE), 'utf8')) as Json;
  const adapterConfig = JSON.parse(readFileSync(join(seeds.adapter, ADAPTER_CONFIG_FILE), 'utf8')) as Json;
  const adapterWeights = readFileSync(join(seeds.adapter, ADAPTER_WEIGHTS_FILE));
  const totalWeight = KIND_WEIGHTS.reduce((n, [, w]) => n + w, 0);
  const root = new Rng(seed);

  for (let i = 0; i < count; i++) {
    const rng = root.fork(i);
    let pick = rng.int(totalWeight);
    const kind = KIND_WEIGHTS.find(([, w]) => (pick -= w) < 0)![0];
    // named like the data cases' (case-<index>-<kind>), which bench/fuzz.ts reads the index back from
    const caseDir = join(workDir, `case-${i}-${kind.replace(/[^a-z0-9_]+/gi, '_')}`);
    if (kind === 'safetensors bytes' || kind === 'safetensors header') {
      const original = rng.pick(weightFiles);
      let bytes: Uint8Array;
      let label: string;
      if (kind === 'safetensors bytes') {
        const mutated = mutateBytes(original, rng);
        bytes = mutated.bytes;
        label = mutated.steps.join(',');
      } else {
        const { header, data } = splitSafetensors(original);
        const mutated = mutateJson(header, rng);
        bytes = joinSafetensors(mutated.doc, data);
        label = mutated.step;
      }
      const file = `${caseDir}.safetensors`;
      writeFileSync(file, bytes);
      yield { target: 'readSafetensors', input: file, file, group: kind, label };
      continue;
    }
    mkdirSync(caseDir, { recursive: true });
    if (kind === 'adapter') {
      // adapter_config.json (structure) or adapter_model.safetensors (bytes) of a copy of the seed adapter
      cpSync(seeds.adapter, caseDir, { recursive: true });
      let label: string;
      if (rng.chance(0.5)) {
        const mutated = mutateJson(adapterConfig, rng);
        writeFileSync(join(caseDir, ADAPTER_CONFIG_FILE), JSON.stringify(mutated.doc));
        label = `config ${mutated.step}`;
      } else {
        const mutated = mutateBytes(adapterWeights, rng);
        writeFileSync(join(caseDir, ADAPTER_WEIGHTS_FILE), mutated.bytes);
        label = `weights ${mutated.steps.join(',')}`;
      }
      yield { target: 'loadAdapterFolder', input: caseDir, file: caseDir, group: kind, label };
      continue;
    }
    // folder cases: a copy of a seed folder with one file mutated
    let label: string;
    if (kind === 'config.json') {
      const [source, config] = rng.pick(configs);
      cpSync(source, caseDir, { recursive: true });
      const mutated = mutateJson(config, rng);
      writeFileSync(join(caseDir, 'config.json'), JSON.stringify(mutated.doc));
      label = mutated.step;
    } else if (kind === 'model.safetensors.index.json') {
      cpSync(seeds.sharded, caseDir, { recursive: true });
      const mutated = mutateJson(index, rng);
      writeFileSync(join(caseDir, WEIGHTS_INDEX_FILE), JSON.stringify(mutated.doc));
      label = mutated.step;
    } else {
      cpSync(seeds.single, caseDir, { recursive: true });
      const mutated = mutateBytes(singleWeights, rng);
      writeFileSync(join(caseDir, 'model.safetensors'), mutated.bytes);
      label = mutated.steps.join(',');
    }
    yield { target: 'loadModelFolder', input: caseDir, file: caseDir, group: kind, label };
  }
}
