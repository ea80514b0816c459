// What every decoder shares: the flat parameter and gradient buffers with named views, an arena of activation
// buffers reused across steps, and the linear layer (the one place LoRA hooks into).
import { allocBf16, isBf16, linearBackward, linearForward, viewBf16, type Backend, type Bf16Buffer, type Weight } from '../backend/kernels.js';
import { checkSequenceLength } from './config.js';
import { KvCache } from './kv-cache.js';
import { headParamName, layoutSizes, paramLayout, type WeightDtype } from './layout.js';
import type { CausalLM, ForwardResult, ModelConfig, ParamSpec, RowPacking } from './types.js';

export type Precision = 'float32' | 'float64';

/**
 * Allocate a float buffer. float64 exists only so tests can take finite differences of a whole model: the
 * TypeScript kernels accept Float64Array, and the buffer is typed as Float32Array so the rest of the code has one
 * type. The native backend only ever sees float32 models.
 */
export function allocFloats(n: number, precision: Precision): Float32Array {
  return precision === 'float64' ? (new Float64Array(n) as unknown as Float32Array) : new Float32Array(n);
}

/**
 * Activation buffers by name, allocated by the backend. A buffer grows when a larger batch arrives and is otherwise
 * reused, so steady-state training allocates nothing. `get` returns a view of exactly the requested size.
 */
export class Arena<F = Float32Array, I = Int32Array> {
  private readonly floats = new Map<string, F>();
  private readonly intBuffers = new Map<string, I>();
  private readonly allocFloat: (n: number) => F;

  constructor(private readonly k: Backend<F, I>, private readonly precision: Precision = 'float32') {
    // float64 buffers are host arrays of the TypeScript backend (finite-difference tests), typed as F
    this.allocFloat = precision === 'float64' ? (n) => allocFloats(n, 'float64') as unknown as F : (n) => k.allocFloats(n);
  }

  get(name: string, size: number): F {
    let b = this.floats.get(name);
    if (b === undefined || this.k.lengthOf(b) < size) {
      if (b !== undefined) this.k.free(b);
      b = this.allocFloat(size);
      this.floats.set(name, b);
    }
    return this.k.view(b, 0, size);
  }

  /** a zero-filled buffer, for gradients that kernels accumulate into */
  zeros(name: string, size: number): F {
    const b = this.get(name, size);
    this.k.zero(b, size);
    return b;
  }

  /** an int32 buffer (token ids, row indices) by name; its contents are whatever was last uploaded */
  ints(name: string, size: number): I {
    let b = this.intBuffers.get(name);
    if (b === undefined || this.k.lengthOf(b) < size) {
      if (b !== undefined) this.k.free(b);
      b = this.k.allocInts(size);
      this.intBuffers.set(name, b);
    }
    return this.k.viewInts(b, 0, size);
  }

  /** `values` in the int32 buffer `name` (sized to fit) */
  uploadInts(name: string, values: Int32Array): I {
    const b = this.ints(name, values.length);
    this.k.uploadInts(b, values);
    return b;
  }

  bytes(): number {
    let n = 0;
    for (const b of this.floats.values()) n += this.k.lengthOf(b) * (this.precision === 'float64' ? 8 : 4);
    for (const b of this.intBuffers.values()) n += this.k.lengthOf(b) * 4;
    return n;
  }
}

/** Extra computation attached to a linear module (LoRA adapters): runs after the base projection. */
export interface LinearHook<F = Float32Array> {
  /** called after the base projection: may add to out (B*T, OC) (LoRA adds B A x) */
  forward(name: string, out: F, inp: F, N: number, C: number, OC: number): void;
  /** accumulates into dinp (N, C) its share of the gradient and records its own parameter gradients */
  backward(name: string, dinp: F, dout: F, inp: F, N: number, C: number, OC: number): void;
}

/**
 * The decoder over one backend's buffers: F and I are the backend's float and int32 buffers (typed arrays on the
 * CPU, the defaults; GPU tensors on WebGPU). Token ids arrive as host arrays and are uploaded once per forward.
 */
export abstract class DecoderBase<F = Float32Array, I = Int32Array> implements CausalLM<F, I> {
  readonly layout: ParamSpec[];
  /** the float32 parameters: all of them, or with a bfloat16 base the norms and biases */
  readonly params: F;
  readonly grads: F;
  /** a bfloat16 base's matrices (torch_dtype bfloat16), frozen; null when every weight is float32 */
  readonly frozen: Bf16Buffer<F> | null;
  readonly arena: Arena<F, I>;
  /** keep only each layer's input during forward and recompute the layer inside backward */
  gradientCheckpointing = false;
  private trainBaseFlag: boolean;
  /** optional adapter hooks keyed by linear module name (e.g. model.layers.0.self_attn.q_proj) */
  linearHooks = new Map<string, LinearHook<F>>();
  protected readonly byName = new Map<string, ParamSpec>();
  protected readonly totalParams: number;
  /** float32 elements of params and grads */
  private readonly floatParams: number;
  protected B = 0;
  protected T = 0;
  /** the current forward's token ids, on the host (checks) and in the backend (kernels) */
  protected ids: Int32Array = new Int32Array(0);
  protected idsBuf!: I;
  /** positions and hidden keys of the current forward when its rows hold several sequences */
  protected packing: RowPacking | null = null;
  /** the packing's hidden-key ranges in the backend */
  protected hiddenKeysBuf: I | null = null;
  /** set while generating: forward then runs on new tokens only, attending over the cached prefix */
  protected cache: KvCache<F> | null = null;

  constructor(readonly config: ModelConfig, public kernels: Backend<F, I>, readonly precision: Precision = 'float32',
    readonly weightDtype: WeightDtype = 'float32') {
    if (precision === 'float64' && kernels.name !== 'js') throw new Error('float64 models run on the js backend only');
    if (precision === 'float64' && weightDtype !== 'float32') throw new Error('float64 models keep every weight in float64');
    this.layout = paramLayout(config, weightDtype);
    for (const p of this.layout) this.byName.set(p.name, p);
    this.totalParams = this.layout.reduce((n, p) => n + p.size, 0);
    const sizes = layoutSizes(this.layout);
    this.floatParams = sizes.float32;
    this.params = this.alloc(sizes.float32);
    this.grads = this.alloc(sizes.float32);
    this.frozen = weightDtype === 'bfloat16' ? allocBf16(kernels, sizes.bf16) : null;
    // a bfloat16 base has no weight gradients: it is frozen from the start (LoRA trains adapters beside it)
    this.trainBaseFlag = weightDtype === 'float32';
    this.arena = new Arena(kernels, precision);
  }

  /** false freezes every base parameter (LoRA): backward then computes only activation gradients */
  get trainBase(): boolean {
    return this.trainBaseFlag;
  }

  set trainBase(on: boolean) {
    if (on && this.frozen) {
      throw new Error('a bfloat16 base (torch_dtype bfloat16) is frozen: train LoRA adapters on it, or load it in float32 to train every weight');
    }
    this.trainBaseFlag = on;
  }

  /** the number of parameters (in every buffer) */
  get parameterCount(): number {
    return this.totalParams;
  }

  /** a zeroed buffer of this model's precision, from its backend */
  alloc(n: number): F {
    return this.precision === 'float64' ? allocFloats(n, 'float64') as unknown as F : this.kernels.allocFloats(n);
  }

  spec(name: string): ParamSpec {
    const s = this.byName.get(name);
    if (!s) throw new Error(`no parameter named '${name}' in this ${this.config.modelType} model`);
    return s;
  }

  hasParam(name: string): boolean {
    return this.byName.has(name);
  }

  /** a float32 parameter's view; a bfloat16 one (torch_dtype bfloat16) is read with weight() or bf16Weight() */
  param(name: string): F {
    const s = this.spec(name);
    if (s.bf16) {
      throw new Error(`'${name}' is stored in bfloat16 (torch_dtype bfloat16): read it with weight() or bf16Weight(), or widen the model`);
    }
    return this.kernels.view(this.params, s.offset, s.size);
  }

  /** a bfloat16-stored matrix's view in the frozen buffer */
  bf16Weight(name: string): Bf16Buffer<F> {
    const s = this.spec(name);
    if (!s.bf16 || !this.frozen) throw new Error(`'${name}' is a float32 parameter of this model: read it with param()`);
    return viewBf16(this.kernels, this.frozen, s.offset, s.size);
  }

  /** a weight as the kernels take it: float32, or bfloat16 when the base stores it so */
  weight(name: string): Weight<F> {
    return this.spec(name).bf16 ? this.bf16Weight(name) : this.param(name);
  }

  grad(name: string): F {
    const s = this.spec(name);
    if (s.bf16) throw new Error(`'${name}' is stored in bfloat16 (torch_dtype bfloat16) and frozen: it has no gradient`);
    return this.kernels.view(this.grads, s.offset, s.size);
  }

  /** gradient view when the parameter is trained, null when frozen (kernels skip null outputs) */
  protected dparam(name: string): F | null {
    return this.trainBase ? this.grad(name) : null;
  }

  protected paramOrNull(name: string): F | null {
    return this.byName.has(name) ? this.param(name) : null;
  }

  protected dparamOrNull(name: string): F | null {
    return this.byName.has(name) ? this.dparam(name) : null;
  }

  headWeight(): Weight<F> {
    return this.weight(headParamName(this.config));
  }

  /** hidden (N,C) -> logits (N,V) written: the output projection, whatever the head weight's dtype */
  headLogits(logits: F, hidden: F, N: number): void {
    linearForward(this.kernels, logits, hidden, this.headWeight(), null, N, this.config.hiddenSize, this.config.vocabSize);
  }

  headGrad(): F {
    return this.grad(headParamName(this.config));
  }

  zeroGrad(): void {
    this.kernels.zero(this.grads, this.floatParams);
  }

  /** inp (N,C) -> out (N,OC) through module `name` (weight `name.weight`, optional `name.bias`, optional hook) */
  protected linear(name: string, out: F, inp: F, N: number, C: number, OC: number): void {
    linearForward(this.kernels, out, inp, this.weight(name + '.weight'), this.paramOrNull(name + '.bias'), N, C, OC);
    this.linearHooks.get(name)?.forward(name, out, inp, N, C, OC);
  }

  /**
   * dout (N,OC), inp (N,C) -> dinp (N,C) accumulated, or written when not `accumulate` (the first product into a
   * buffer: it needs no zeroing); parameter gradients accumulated unless frozen. A LoRA hook adds its share after.
   */
  protected linearBackward(name: string, dinp: F | null, dout: F, inp: F, N: number, C: number, OC: number,
    accumulate: boolean): void {
    linearBackward(this.kernels, dinp, this.dparam(name + '.weight'), this.dparamOrNull(name + '.bias'),
      dout, inp, this.weight(name + '.weight'), N, C, OC, accumulate);
    const hook = this.linearHooks.get(name);
    if (hook && dinp) hook.backward(name, dinp, dout, inp, N, C, OC);
  }

  /** position of the first token of this forward: the cached prefix length while generating, else 0 */
  protected get pos0(): number {
    return this.cache ? this.cache.length : 0;
  }

  /**
   * Forward over new tokens ids (1,T) that continue the sequence held in `cache` (which it extends); returns the
   * hidden states of the new tokens. No backward may follow.
   */
  forwardCached(cache: KvCache<F>, ids: Int32Array): ForwardResult<F> {
    this.cache = cache;
    try {
      const r = this.forward(ids, 1, ids.length);
      cache.length += ids.length;
      return r;
    } finally {
      this.cache = null;
      this.B = 0;
    }
  }

  newKvCache(): KvCache<F> {
    return new KvCache(this.kernels, this.config.numLayers, this.config.numKvHeads * this.config.headDim);
  }

  forward(ids: Int32Array, B: number, T: number, packing: RowPacking | null = null): ForwardResult<F> {
    if (ids.length !== B * T) throw new Error(`forward: ids has ${ids.length} entries, expected B*T = ${B * T}`);
    if (packing && this.cache) throw new Error('forward: packed rows cannot continue a KV cache');
    if (packing && (packing.positions.length !== B * T || packing.hiddenKeys.length !== 2 * B)) {
      throw new Error(`forward: packing has ${packing.positions.length} positions and ${packing.hiddenKeys.length / 2} ` +
        `hidden-key ranges, expected ${B * T} and ${B}`);
    }
    // what must fit the model's context is the largest position, not the packed row's width
    checkSequenceLength(this.config, packing ? packing.length : this.pos0 + T);
    const V = this.config.vocabSize;
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] < 0 || ids[i] >= V) {
        throw new Error(`token id ${ids[i]} at position ${i} is outside the vocabulary (vocab_size ${V}): ` +
          'the tokenizer does not match this model');
      }
    }
    this.B = B;
    this.T = T;
    this.ids = ids;
    this.idsBuf = this.arena.uploadInts('ids', ids);
    this.packing = packing;
    this.hiddenKeysBuf = packing ? this.arena.uploadInts('hidden-keys', packing.hiddenKeys) : null;
    return { hidden: this.forwardImpl(B, T), B, T };
  }

  backward(dhidden: F): void {
    if (this.B === 0) throw new Error('backward called before forward');
    this.backwardImpl(dhidden);
  }

  /** arena prefix of layer l's saved activations: one shared slot when they are recomputed anyway */
  private slot(l: number): string {
    return this.gradientCheckpointing ? 'ckpt.' : `L${l}.`;
  }

  private forwardImpl(B: number, T: number): F {
    const BT = B * T;
    const C = this.config.hiddenSize;
    // x{l} is the residual stream entering layer l: always kept, it is all checkpointing keeps
    let x = this.arena.get('x0', BT * C);
    this.embedForward(x);
    for (let l = 0; l < this.config.numLayers; l++) {
      const next = this.arena.get(`x${l + 1}`, BT * C);
      this.layerForward(l, x, next, this.slot(l));
      x = next;
    }
    return this.finalForward(x);
  }

  private backwardImpl(dhidden: F): void {
    const BT = this.B * this.T;
    const C = this.config.hiddenSize;
    const L = this.config.numLayers;
    // dx: gradient w.r.t. the residual stream, carried down through the layers
    const dx = this.arena.zeros('dx', BT * C);
    this.finalBackward(dx, dhidden, this.arena.get(`x${L}`, BT * C));
    for (let l = L - 1; l >= 0; l--) {
      const x = this.arena.get(`x${l}`, BT * C);
      if (this.gradientCheckpointing) this.layerForward(l, x, this.arena.get('ckpt.out', BT * C), this.slot(l));
      this.layerBackward(l, dx, x, this.slot(l));
    }
    this.embedBackward(dx);
  }

  /** ids (N) -> out (N,C) rows of the table `name` (float32 or bfloat16), written or accumulated */
  protected embeddingLookup(out: F, ids: I, name: string, N: number, C: number, accumulate: boolean): void {
    const table = this.weight(name);
    if (isBf16(table)) this.kernels.embeddingForwardBf16(out, ids, table, N, C, accumulate);
    else this.kernels.embeddingForward(out, ids, table, N, C, accumulate);
  }

  /** the current ids (this.idsBuf) -> x0 (BT,C) */
  protected abstract embedForward(x0: F): void;
  /** dx (BT,C) -> embedding gradients */
  protected abstract embedBackward(dx: F): void;
  /** x (BT,C) -> out (BT,C), saving activations under the arena prefix `slot` */
  protected abstract layerForward(l: number, x: F, out: F, slot: string): void;
  /** dx (BT,C): gradient w.r.t. the layer output in, w.r.t. its input out (in place); parameter grads accumulated */
  protected abstract layerBackward(l: number, dx: F, x: F, slot: string): void;
  /** x_L (BT,C) -> hidden (BT,C): the final norm */
  protected abstract finalForward(x: F): F;
  /** dhidden -> dx accumulated */
  protected abstract finalBackward(dx: F, dhidden: F, x: F): void;
}
