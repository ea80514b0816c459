// What every decoder shares: the flat parameter and gradient buffers with named views, an arena of activation
// buffers reused across steps, and the linear layer (the one place LoRA hooks into).
import type { FloatArray, Kernels } from '../backend/kernels.js';
import { checkSequenceLength } from './config.js';
import { headParamName, paramLayout } from './layout.js';
import type { CausalLM, ForwardResult, ModelConfig, ParamSpec } from './types.js';

/**
 * Activation buffers by name. A buffer grows when a larger batch arrives and is otherwise reused, so steady-state
 * training allocates nothing. `get` returns a view of exactly the requested size.
 */
export class Arena {
  private readonly buffers = new Map<string, Float32Array>();

  get(name: string, size: number): Float32Array {
    let b = this.buffers.get(name);
    if (!b || b.length < size) {
      b = new Float32Array(size);
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

  clear(): void {
    this.buffers.clear();
  }
}

/** A linear layer's saved input, so backward can form dweight without the forward caller keeping it. */
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
  readonly arena = new Arena();
  /** false freezes every base parameter (LoRA): backward then computes only activation gradients */
  trainBase = true;
  /** optional adapter hooks keyed by linear module name (e.g. model.layers.0.self_attn.q_proj) */
  linearHooks = new Map<string, LinearHook>();
  protected readonly byName = new Map<string, ParamSpec>();
  protected B = 0;
  protected T = 0;
  protected ids: Int32Array = new Int32Array(0);

  constructor(readonly config: ModelConfig, public kernels: Kernels) {
    this.layout = paramLayout(config);
    for (const p of this.layout) this.byName.set(p.name, p);
    const total = this.layout.reduce((n, p) => n + p.size, 0);
    this.params = new Float32Array(total);
    this.grads = new Float32Array(total);
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

  forward(ids: Int32Array, B: number, T: number): ForwardResult {
    if (ids.length !== B * T) throw new Error(`forward: ids has ${ids.length} entries, expected B*T = ${B * T}`);
    checkSequenceLength(this.config, T);
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
    return { hidden: this.forwardImpl(ids, B, T), B, T };
  }

  backward(dhidden: FloatArray): void {
    if (this.B === 0) throw new Error('backward called before forward');
    this.backwardImpl(dhidden as Float32Array);
  }

  protected abstract forwardImpl(ids: Int32Array, B: number, T: number): Float32Array;
  protected abstract backwardImpl(dhidden: Float32Array): void;
}
