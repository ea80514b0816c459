// Which stored tensor is which parameter: the weight files' tensors (from their headers, or a page's bytes) matched to
// the parameter layout a config.json implies, by name and shape, before anything is allocated. One matcher for
// loadModel, the browser's folders of bytes and the GGUF exporter. No file system here.

import { canonicalName, paramLayout } from '../model/layout.js';
import type { ModelConfig, ParamSpec } from '../model/types.js';
import { quoteUntrusted, shortenUntrusted } from './safetensors-header.js';

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function listNames(names: readonly string[]): string {
  return `${names.slice(0, 8).map((n) => shortenUntrusted(n)).join(', ')}${names.length > 8 ? ', ...' : ''}`;
}

/** The layer a parameter belongs to (model.layers.N. / transformer.h.N.), or null for embeddings and the final norm. */
function layerOf(name: string): number | null {
  const match = /^(?:model\.layers|transformer\.h)\.(\d+)\./.exec(name);
  return match === null ? null : Number(match[1]);
}

/** ' (vocab_size = 32000, hidden_size = 4096)': the config.json fields that give a shape's dimensions, when some do */
function fieldsBehind(config: ModelConfig, shape: readonly number[]): string {
  const named: string[] = [];
  for (const [key, value] of Object.entries(config.raw)) {
    if (typeof value === 'number' && shape.includes(value) && !named.some((n) => n.startsWith(`${key} `))) {
      named.push(`${key} = ${value}`);
    }
  }
  return named.length === 0 ? '' : ` (${named.slice(0, 4).join(', ')})`;
}

/**
 * Matches the weight files' tensors to the parameters the config implies, from the headers alone: every
 * parameter present once with its shape, nothing left over. Runs before anything is allocated, so a config that
 * claims more than the files hold (num_hidden_layers: 1000000) fails here, naming the field, instead of
 * allocating for it.
 */
export function matchWeights<T extends { shape: readonly number[]; file: string }>(dir: string, configFile: string, config: ModelConfig,
  tensors: ReadonlyMap<string, T>): Map<ParamSpec, T> {
  const layout = paramLayout(config);
  const specs = new Map(layout.map((p) => [p.name, p]));
  const matched = new Map<ParamSpec, T>();
  const unexpected: string[] = [];
  const tiedHead = config.tieWordEmbeddings ? 'lm_head.weight' : null;
  let layersInFiles = 0;
  for (const [fileName, info] of tensors) {
    const name = canonicalName(config, fileName);
    if (name === null || name === tiedHead) continue; // buffers, and a tied lm_head some checkpoints store anyway
    const layer = layerOf(name);
    if (layer !== null) layersInFiles = Math.max(layersInFiles, layer + 1);
    const spec = specs.get(name);
    if (spec === undefined) {
      unexpected.push(fileName);
      continue;
    }
    if (!sameShape(info.shape, spec.hfShape)) {
      throw new Error(`${info.file}: tensor ${quoteUntrusted(fileName)} has shape [${info.shape}] but ` +
        `config.json implies [${spec.hfShape}]${fieldsBehind(config, spec.hfShape)}; the weights do not match this config`);
    }
    if (matched.has(spec)) throw new Error(`${dir}: parameter '${name}' is stored twice (as ${quoteUntrusted(fileName)} and another name)`);
    matched.set(spec, info);
  }
  if (layersInFiles < config.numLayers) {
    const field = config.family === 'gpt2' ? 'n_layer' : 'num_hidden_layers';
    throw new Error(`${configFile}: '${field}' is ${config.numLayers} but the weights hold ${layersInFiles} layer(s); ` +
      `the config and the weights do not belong together`);
  }
  const missing = layout.filter((p) => !matched.has(p)).map((p) => p.name);
  if (missing.length > 0) {
    throw new Error(`${dir}: the weights lack ${missing.length} parameter(s) this ${config.modelType} config needs: ` +
      `${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ', ...' : ''}`);
  }
  if (unexpected.length > 0) {
    throw new Error(`${dir}: the weights hold ${unexpected.length} tensor(s) this ${config.modelType} config has no ` +
      `place for: ${listNames(unexpected)}; check model_type and the config options`);
  }
  return matched;
}
