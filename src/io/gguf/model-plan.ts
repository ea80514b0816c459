// What a model's GGUF file holds, planned without a file system: the architecture's hyper-parameters, the
// tokenizer's vocabulary and every parameter under llama.cpp's name, each read only when its turn to be written
// comes. export.ts writes the plan to a file (`orpo export gguf`); modelGgufBytes turns it into the bytes the page
// downloads. One plan for both, so the page's file is the exporter's byte for byte.

import { readParam } from '../../model/create.js';
import { createTokenizer, type Tokenizer, type TokenizerFiles } from '../../data/tokenizer.js';
import type { DecoderBase } from '../../model/base.js';
import type { ModelConfig, ParamSpec } from '../../model/types.js';
import { architectureMetadata, tensorPlans, type GgufDtype, type ParamReader } from './architecture.js';
import { ggufBytes, type GgufMetadata, type GgufTensorPlan } from './encode.js';
import { vocabMetadata } from './vocab.js';

export interface GgufModelOptions {
  /** how the matrices are stored (default f16, as convert_hf_to_gguf.py) */
  dtype?: GgufDtype;
  /** general.name (the exporter uses the model folder's name) */
  name?: string;
  /** the caller's tokenizer built from the same files, when it has one (a 150k-token tokenizer takes seconds to build) */
  tokenizer?: Tokenizer;
}

/** A model (its parameters read through `read`) and its tokenizer as GGUF metadata and tensors. */
export function ggufModelPlan(config: ModelConfig, layout: readonly ParamSpec[], read: ParamReader, tokenizerFiles: TokenizerFiles,
  opts: GgufModelOptions = {}): { metadata: GgufMetadata; tensors: GgufTensorPlan[] } {
  const dtype = opts.dtype ?? 'f16';
  const tokenizer = opts.tokenizer ?? createTokenizer(tokenizerFiles);
  const metadata: GgufMetadata = architectureMetadata(config, dtype, opts.name ?? 'model');
  for (const [key, value] of vocabMetadata({ tokenizerJson: tokenizerFiles.tokenizer, tokenizer, tokenizerConfig: tokenizerFiles.config, config })) {
    metadata.set(key, value);
  }
  return { metadata, tensors: tensorPlans(config, layout, read, dtype) };
}

/** A model in memory and its tokenizer as one GGUF file's bytes. */
export async function modelGgufBytes(model: DecoderBase, tokenizerFiles: TokenizerFiles, opts: GgufModelOptions = {}): Promise<Uint8Array> {
  const plan = ggufModelPlan(model.config, model.layout, (name) => readParam(model, name), tokenizerFiles, opts);
  return ggufBytes(plan.metadata, plan.tensors);
}
