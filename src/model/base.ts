// What every decoder shares: the flat parameter and gradient buffers with named views, an arena of activation
// buffers reused across steps, and the linear layer (the one place LoRA hooks into).
import type { FloatArray, Kernels } from '../backend/kernels.js';
import { checkSequenceLength } from './config.js';
import { KvCache } from './kv-cache.js';
import { headParamName, paramLayout } from './layout.js';
import type { CausalLM, ForwardResult, ModelConfig, ParamSpec, RowPacking } from './types.js';

/**
 * Activation buffers by name. A buffer grows when a larger batch arrives and is otherwise reused, so steady-state
 * training allocates nothing. `get` returns a view of exactly the requested size.
 */
export type Precision = 'float32' | 'float64';

/**
 * Allocate a float buffer. float64 exists only so tests can take finite differences of a whole model: the
 * TypeScript kernels accept Float64Array, and the buffer is typed as Float32Array so the rest of the code has one
 * type. The native backend only ever sees float32 models.
 */
export function allocFloats(n: number, precision: Precision): Float32Array {
  return precision === 'float64' ? (new Float64Array(n) as unknown as Float32Array) : new Float32Array(n);
}

export class Arena {
  private readonly buffers = new Map<string, Float32Array>();

  constructor(private readonly precision: Precision = 'float32') {}

  get(name: string, size: number): Float32Array {
    let b = this.buffers.get(name);
    if (!b || b.length < size) {
      b = allocFloats(size, this.precision);
      this.buffers.set(name, b);
    }
    return b.subarray(0, size);
  }

  /** a zero-filled buffer, for gradients that kernels accumulate into */
  zeros(name: string, size: number): Float32Array {
    const b = this.get(name, size);
    b.fill(0);
    return b;
  }

  bytes(): number {
    let n = 0;
    for (const b of this.buffers.values()) n += b.byteLength;
    return n;
  }
}

/** Extra computation attached to a linear module (LoRA adapters): runs after the base projection. */
export interface LinearHook {
  /** called after the base projection: may add to out (B*T, OC) (LoRA adds B A x) */
  forward(name: string, out: Float32Array, inp: Float32Array, N: number, C: number, OC: number): void;
  /** accumulates into dinp (N, C) its share of the gradient and records its own parameter gradients */
  backward(name: string, dinp: Float32Array, dout: Float32Array, inp: Float32Array, N: number, C: number, OC: number): void;
}

export abstract class DecoderBase implements CausalLM {
  readonly layout: ParamSpec[];
  readonly params: Float32Array;
  readonly grads: Float32Array;
  readonly arena: Arena;
  /** keep only each layer's input during forward and recompute the layer inside backward */
  gradientCheckpointing = false;
  /** false freezes every base parameter (LoRA): backward then computes only activation gradients */
  trainBase = true;
  /** optional adapter hooks keyed by linear module name (e.g. model.layers.0.self_attn.q_proj) */
  linearHooks = new Map<string, LinearHook>();
  protected readonly byName = new Map<string, ParamSpec>();
  protected B = 0;
  protected T = 0;
  protected ids: Int32Array = new Int32Array(0);
  /** positions and hidden keys of the current forward when its rows hold several sequences */
  protected packing: RowPacking | null = null;
  /** set while generating: forward then runs on new tokens only, attending over the cached prefix */
  protected cache: KvCache | null = null;

  constructor(readonly config: ModelConfig, public kernels: Kernels, readonly precision: Precision = 'float32') {
    if (precision === 'float64' && kernels.name !== 'js') throw new Error('float64 models run on the js backend only');
    this.layout = paramLayout(config);
    for (const p of this.layout) this.byName.set(p.name, p);
    const total = this.layout.reduce((n, p) => n + p.size, 0);
    this.params = allocFloats(total, precision);
    this.grads = allocFloats(total, precision);
    this.arena = new Arena(precision);
  }

  /** a buffer of this model's precision */
  alloc(n: number): Float32Array {
    return allocFloats(n, this.precision);
  }

  spec(name: string): ParamSpec {
    const s = this.byName.get(name);
    if (!s) throw new Error(`no parameter named '${name}' in this ${this.config.modelType} model`);
    return s;
  }

  hasParam(name: string): boolean {
    return this.byName.has(name);
  }

  param(name: string): Float32Array {
    const s = this.spec(name);
    return this.params.subarray(s.offset, s.offset + s.size);
  }

  grad(name: string): Float32Array {
    const s = this.spec(name);
    return this.grads.subarray(s.offset, s.offset + s.size);
  }

  /** gradient view when the parameter is trained, null when frozen (kernels skip null outputs) */
  protected dparam(name: string): Float32Array | null {
    return this.trainBase ? this.grad(name) : null;
  }

  protected paramOrNull(name: string): Float32Array | null {
    return this.byName.has(name) ? this.param(name) : null;
  }

  protected dparamOrNull(name: string): Float32Array | null {
    return this.byName.has(name) ? this.dparam(name) : null;
  }

  headWeight(): Float32Array {
    return this.param(headParamName(this.config));
  }

  headGrad(): Float32Array {
    return this.grad(headParamName(this.config));
  }

  zeroGrad(): void {
    this.grads.fill(0);
  }

  /** inp (N,C) -> out (N,OC) through module `name` (weight `name.weight`, optional `name.bias`, optional hook) */
  protected linear(name: string, out: Float32Array, inp: Float32Array, N: number, C: number, OC: number): void {
    this.kernels.matmulForward(out, inp, this.param(name + '.weight'), this.paramOrNull(name + '.bias'), N, C, OC);
    this.linearHooks.get(name)?.forward(name, out, inp, N, C, OC);
  }

  /** dout (N,OC), inp (N,C) -> dinp (N,C) accumulated, parameter gradients accumulated unless frozen */
  protected linearBackward(name: string, dinp: Float32Array | null, dout: Float32Array, inp: Float32Array,
    N: number, C: number, OC: number): void {
    this.kernels.matmulBackward(dinp, this.dparam(name + '.weight'), this.dparamOrNull(name + '.bias'),
      dout, inp, this.param(name + '.weight'), N, C, OC);
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
  forwardCached(cache: KvCache, ids: Int32Array): ForwardResult {
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

  newKvCache(): KvCache {
    return new KvCache(this.config.numLayers, this.config.numKvHeads * this.config.headDim);
  }

  forward(ids: Int32Array, B: number, T: number, packing: RowPacking | null = null): ForwardResult {
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
    this.packing = packing;
    return { hidden: this.forwardImpl(ids, B, T), B, T };
  }

  backward(dhidden: FloatArray): void {
    if (this.B === 0) throw new Error('backward called before forward');
    this.backwardImpl(dhidden as Float32Array);
  }

  /** arena prefix of layer l's saved activations: one shared slot when they are recomputed anyway */
  private slot(l: number): string {
    return this.gradientCheckpointing ? 'ckpt.' : `L${l}.`;
  }

  private forwardImpl(ids: Int32Array, B: number, T: number): Float32Array {
    const BT = B * T;
    const C = this.config.hiddenSize;
    // x{l} is the residual stream entering layer l: always kept, it is all checkpointing keeps
    let x = this.arena.get('x0', BT * C);
    this.embedForward(x, ids);
    for (let l = 0; l < this.config.numLayers; l++) {
      const next = this.arena.get(`x${l + 1}`, BT * C);
      this.layerForward(l, x, next, this.slot(l));
      x = next;
    }
    return this.finalForward(x);
  }

  private backwardImpl(dhidden: Float32Array): void {
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

  /** ids (B*T) -> x0 (BT,C) */
  protected abstract embedForward(x0: Float32Array, ids: Int32Array): void;
  /** dx (BT,C) -> embedding gradients */
  protected abstract embedBackward(dx: Float32Array): void;
  /** x (BT,C) -> out (BT,C), saving activations under the arena prefix `slot` */
  protected abstract layerForward(l: number, x: Float32Array, out: Float32Array, slot: string): void;
  /** dx (BT,C): gradient w.r.t. the layer output in, w.r.t. its input out (in place); parameter grads accumulated */
  protected abstract layerBackward(l: number, dx: Float32Array, x: Float32Array, slot: string): void;
  /** x_L (BT,C) -> hidden (BT,C): the final norm */
  protected abstract finalForward(x: Float32Array): Float32Array;
  /** dhidden -> dx accumulated */
  protected abstract finalBackward(dx: Float32Array, dhidden: Float32Array, x: Float32Array): void;
}
