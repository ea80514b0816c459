// The one table of parameters per family: Hugging Face name (as save_pretrained writes it), internal shape, and
// whether the file stores the transpose (GPT-2's Conv1D keeps (in, out); inside orpo-ts every linear is (out, in)).
import type { ModelConfig, ParamSpec } from './types.js';

interface Entry {
  name: string;
  shape: number[];
  transposed?: boolean;
}

function gpt2Entries(c: ModelConfig): Entry[] {
  const C = c.hiddenSize;
  const I = c.intermediateSize;
  const e: Entry[] = [
    { name: 'transformer.wte.weight', shape: [c.vocabSize, C] },
    { name: 'transformer.wpe.weight', shape: [c.maxPositions, C] },
  ];
  for (let l = 0; l < c.numLayers; l++) {
    const p = `transformer.h.${l}.`;
    e.push(
      { name: p + 'ln_1.weight', shape: [C] }, { name: p + 'ln_1.bias', shape: [C] },
      { name: p + 'attn.c_attn.weight', shape: [3 * C, C], transposed: true }, { name: p + 'attn.c_attn.bias', shape: [3 * C] },
      { name: p + 'attn.c_proj.weight', shape: [C, C], transposed: true }, { name: p + 'attn.c_proj.bias', shape: [C] },
      { name: p + 'ln_2.weight', shape: [C] }, { name: p + 'ln_2.bias', shape: [C] },
      { name: p + 'mlp.c_fc.weight', shape: [I, C], transposed: true }, { name: p + 'mlp.c_fc.bias', shape: [I] },
      { name: p + 'mlp.c_proj.weight', shape: [C, I], transposed: true }, { name: p + 'mlp.c_proj.bias', shape: [C] },
    );
  }
  e.push({ name: 'transformer.ln_f.weight', shape: [C] }, { name: 'transformer.ln_f.bias', shape: [C] });
  if (!c.tieWordEmbeddings) e.push({ name: 'lm_head.weight', shape: [c.vocabSize, C] });
  return e;
}

function llamaEntries(c: ModelConfig): Entry[] {
  const C = c.hiddenSize;
  const I = c.intermediateSize;
  const Q = c.numHeads * c.headDim;
  const KV = c.numKvHeads * c.headDim;
  const e: Entry[] = [{ name: 'model.embed_tokens.weight', shape: [c.vocabSize, C] }];
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}.`;
    const a = p + 'self_attn.';
    e.push({ name: p + 'input_layernorm.weight', shape: [C] });
    e.push({ name: a + 'q_proj.weight', shape: [Q, C] });
    if (c.qkvBias) e.push({ name: a + 'q_proj.bias', shape: [Q] });
    e.push({ name: a + 'k_proj.weight', shape: [KV, C] });
    if (c.qkvBias) e.push({ name: a + 'k_proj.bias', shape: [KV] });
    e.push({ name: a + 'v_proj.weight', shape: [KV, C] });
    if (c.qkvBias) e.push({ name: a + 'v_proj.bias', shape: [KV] });
    e.push({ name: a + 'o_proj.weight', shape: [C, Q] });
    if (c.oBias) e.push({ name: a + 'o_proj.bias', shape: [C] });
    if (c.qkNorm) e.push({ name: a + 'q_norm.weight', shape: [c.headDim] }, { name: a + 'k_norm.weight', shape: [c.headDim] });
    e.push({ name: p + 'post_attention_layernorm.weight', shape: [C] });
    for (const [proj, shape] of [['gate_proj', [I, C]], ['up_proj', [I, C]], ['down_proj', [C, I]]] as const) {
      e.push({ name: p + `mlp.${proj}.weight`, shape: [...shape] });
      if (c.mlpBias) e.push({ name: p + `mlp.${proj}.bias`, shape: [shape[0]] });
    }
  }
  e.push({ name: 'model.norm.weight', shape: [C] });
  if (!c.tieWordEmbeddings) e.push({ name: 'lm_head.weight', shape: [c.vocabSize, C] });
  return e;
}

/**
 * How a model stores its weights: every tensor float32 (trainable), or the matrices (linear weights, embeddings, the
 * head) in one frozen bfloat16 buffer with norms and biases float32 (torch_dtype bfloat16: a LoRA base in half the
 * memory; its products are bf16 products, the numbers of the bf16 option).
 */
export type WeightDtype = 'float32' | 'bfloat16';

/** the tensors a bfloat16 base keeps in bfloat16: every matrix */
function storedInBf16(e: Entry): boolean {
  return e.shape.length === 2;
}

/**
 * The parameter layout of a model: every tensor's place in the one flat buffer; with a bfloat16 base, the matrices'
 * places in the bfloat16 buffer (at even offsets: whole 32-bit elements) and the rest's in the float32 one.
 */
export function paramLayout(config: ModelConfig, weightDtype: WeightDtype = 'float32'): ParamSpec[] {
  const entries = config.family === 'gpt2' ? gpt2Entries(config) : llamaEntries(config);
  let offset = 0;
  let bf16Offset = 0;
  return entries.map((e) => {
    const size = e.shape.reduce((a, b) => a * b, 1);
    const transposed = e.transposed ?? false;
    const spec: ParamSpec = {
      name: e.name, shape: e.shape, hfShape: transposed ? [e.shape[1], e.shape[0]] : e.shape, transposed, offset, size,
    };
    if (weightDtype === 'bfloat16' && storedInBf16(e)) {
      spec.offset = bf16Offset;
      spec.bf16 = true;
      bf16Offset += size + (size % 2);
    } else {
      offset += size;
    }
    return spec;
  });
}

/** the float32 elements and the bfloat16 values a layout's buffers hold */
export function layoutSizes(layout: readonly ParamSpec[]): { float32: number; bf16: number } {
  let float32 = 0;
  let bf16 = 0;
  for (const p of layout) {
    if (p.bf16) bf16 = Math.max(bf16, p.offset + p.size + (p.size % 2));
    else float32 = Math.max(float32, p.offset + p.size);
  }
  return { float32, bf16 };
}

/** Name of the (V, C) output projection: lm_head, or the token embedding when tied. */
export function headParamName(config: ModelConfig): string {
  if (!config.tieWordEmbeddings) return 'lm_head.weight';
  return config.family === 'gpt2' ? 'transformer.wte.weight' : 'model.embed_tokens.weight';
}

/**
 * Map a tensor name found in a checkpoint to our name, or null for tensors that are not parameters (buffers such
 * as GPT-2's causal-mask `attn.bias` or old Llama `rotary_emb.inv_freq`). GPT-2 checkpoints saved from GPT2Model
 * (the original `gpt2` weights) have no `transformer.` prefix.
 */
export function canonicalName(config: ModelConfig, fileName: string): string | null {
  if (fileName.endsWith('.attn.masked_bias') || fileName.endsWith('rotary_emb.inv_freq')) return null;
  if (config.family === 'gpt2') {
    if (/^(transformer\.)?h\.\d+\.attn\.bias$/.test(fileName)) return null;
    if (fileName.startsWith('transformer.') || fileName === 'lm_head.weight') return fileName;
    return 'transformer.' + fileName;
  }
  return fileName;
}

/**
 * A flat buffer laid out like the parameters (the parameters, their gradients, optimizer moments) as the tensors
 * a Hugging Face checkpoint holds: its names, its shapes, Conv1D weights transposed back to (in, out). Tensors that
 * need no transpose are views of `source`, not copies.
 */
export function hfLayoutTensors(layout: readonly ParamSpec[], source: Float32Array): { name: string; shape: number[]; data: Float32Array }[] {
  const frozen = layout.find((p) => p.bf16);
  if (frozen) {
    throw new Error(`${frozen.name} is stored in bfloat16 (torch_dtype bfloat16), outside the float32 buffer: ` +
      'read the weights through the model (widenModel gives a float32 copy)');
  }
  return layout.map((p) => {
    const view = source.subarray(p.offset, p.offset + p.size);
    if (!p.transposed) return { name: p.name, shape: p.hfShape, data: view };
    const data = new Float32Array(p.size);
    transpose2d(data, view, p.shape[0], p.shape[1]);
    return { name: p.name, shape: p.hfShape, data };
  });
}

/** Transpose a (rows, cols) matrix into out (cols, rows). */
export function transpose2d(out: Float32Array, inp: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = inp[r * cols + c];
  }
}
