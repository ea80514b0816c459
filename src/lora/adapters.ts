// LoRA (Hu et al. 2021) as PEFT implements it: each selected linear module W (out,in) gains
//   out += scaling * dropout(x) A^T B^T        A (r,in) Kaiming-uniform(a=sqrt(5)), B (out,r) zero at start
// The adapters of a model live in one flat parameter buffer and one flat gradient buffer (so AdamW and
// gradient clipping run on them alone) and hook into the model's linear layers (DecoderBase.linearHooks);
// the base model is frozen (trainBase = false: no base gradients are computed).
//
// Dropout is seeded and stateless: the mask of a module's call is a hash of (seed, module, micro-step, element),
// so gradient checkpointing's recomputed forward and the backward regenerate the same mask without storing it.
// The micro-step counter of a module advances at its backward, so every training micro-batch draws a new mask.
import type { Backend } from '../backend/kernels.js';
import { mix32 } from '../backend/kernels.js';
import { Arena, type DecoderBase, type LinearHook } from '../model/base.js';
import { Rng } from '../tensor/rng.js';
import { checkLoraSettings, loraScaling, selectLoraTargets, type LoraSettings, type LoraTarget } from './config.js';

/** One adapted module's place in the flat buffers: A (r, in) at aOffset, then B (out, r) at bOffset. */
export interface LoraLayerSpec extends LoraTarget {
  aOffset: number;
  bOffset: number;
}

export class LoraAdapters<F = Float32Array, I = Int32Array> {
  readonly scaling: number;
  readonly layers: readonly LoraLayerSpec[];
  /** every A and B, one allocation (the model's precision) */
  readonly params: F;
  /** their gradients, same layout */
  readonly grads: F;
  /** PEFT's model.train() / model.eval(): dropout acts only while training */
  training = false;
  /** scratch and saved (scaled) x A^T per module */
  readonly arena: Arena<F, I>;
  private readonly byModule = new Map<string, LoraLayerSpec>();
  private readonly dropoutSteps: Uint32Array;
  /** the seed of the initial A factors and of every dropout mask (a copy on another backend needs it to draw the same masks) */
  readonly seed: number;

  private readonly total: number;

  constructor(readonly model: DecoderBase<F, I>, readonly settings: LoraSettings, opts: { seed?: number } = {}) {
    checkLoraSettings(settings);
    this.scaling = loraScaling(settings);
    const r = settings.r;
    let offset = 0;
    this.layers = selectLoraTargets(model.config, model.layout, settings.targetModules).map((t) => {
      const aOffset = offset;
      const bOffset = aOffset + r * t.inFeatures;
      offset = bOffset + t.outFeatures * r;
      return { ...t, aOffset, bOffset };
    });
    for (const l of this.layers) this.byModule.set(l.module, l);
    this.total = offset;
    this.params = model.alloc(offset);
    this.grads = model.alloc(offset);
    this.arena = new Arena(model.kernels, model.precision);
    this.dropoutSteps = new Uint32Array(this.layers.length);
    this.seed = (opts.seed ?? 0) >>> 0;
    this.initialise(new Rng(this.seed));
  }

  /** PEFT's init_lora_weights=True: A ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform_ with a = sqrt(5)), B = 0 */
  initialise(rng: Rng): void {
    // drawn on the host in the model's precision, then uploaded whole
    const host = this.model.precision === 'float64' ? new Float64Array(this.total) : new Float32Array(this.total);
    for (const l of this.layers) {
      const bound = 1 / Math.sqrt(l.inFeatures);
      const n = this.settings.r * l.inFeatures;
      for (let i = 0; i < n; i++) host[l.aOffset + i] = (2 * rng.uniform() - 1) * bound;
    }
    this.kernels.upload(this.params, host);
  }

  get kernels(): Backend<F, I> {
    return this.model.kernels;
  }

  get size(): number {
    return this.total;
  }

  layer(module: string): LoraLayerSpec {
    const l = this.byModule.get(module);
    if (!l) throw new Error(`no LoRA adapter on module '${module}'`);
    return l;
  }

  /** A (r, in) of a module, a view into params (or `source`, e.g. grads) */
  A(module: string, source: F = this.params): F {
    const l = this.layer(module);
    return this.kernels.view(source, l.aOffset, this.settings.r * l.inFeatures);
  }

  /** B (out, r) of a module */
  B(module: string, source: F = this.params): F {
    const l = this.layer(module);
    return this.kernels.view(source, l.bOffset, l.outFeatures * this.settings.r);
  }

  zeroGrad(): void {
    this.kernels.zero(this.grads, this.total);
  }

  /** micro-steps drawn so far per module (checkpoint state, so a resumed run draws the same dropout masks) */
  getDropoutSteps(): number[] {
    return Array.from(this.dropoutSteps);
  }

  setDropoutSteps(steps: readonly number[]): void {
    if (steps.length !== this.dropoutSteps.length) throw new Error(`LoRA dropout state has ${steps.length} entries, expected ${this.dropoutSteps.length}`);
    this.dropoutSteps.set(steps);
  }

  /** Install the hooks and freeze the base model. */
  attach(): this {
    this.layers.forEach((l, index) => this.model.linearHooks.set(l.module, this.hookFor(l, index)));
    this.model.trainBase = false;
    return this;
  }

  /** Remove the hooks (the base model computes without adapters again; trainBase is left as it is). */
  detach(): void {
    for (const l of this.layers) this.model.linearHooks.delete(l.module);
  }

  private dropoutKey(index: number): number | null {
    if (!this.training || this.settings.dropout === 0) return null;
    return mix32(mix32(this.seed ^ 0x6c6f7261) ^ Math.imul(index + 1, 0x9e3779b1) ^ mix32(this.dropoutSteps[index]! + 0x51ed27));
  }

  private hookFor(l: LoraLayerSpec, index: number): LinearHook<F> {
    const r = this.settings.r;
    const s = this.scaling;
    const p = this.settings.dropout;
    const a = this.arena;
    return {
      // inp (N,C) -> out (N,OC) += s * (x A^T) B^T, with x = dropout(inp)
      forward: (_name, out, inp, N, C, OC) => {
        const k = this.kernels;
        const key = this.dropoutKey(index);
        let x = inp;
        if (key !== null) {
          x = a.get('xdrop', N * C);
          k.dropoutForward(x, inp, N * C, key, p);
        }
        const zs = a.get(`zs${index}`, N * r);
        k.matmulForward(zs, x, this.A(l.module), null, N, C, r);
        k.scale(zs, s, N * r);
        k.gemm(out, zs, this.B(l.module), N, OC, r, false, true, true);
      },
      // dout (N,OC) -> dA, dB accumulated; dinp (N,C) accumulated
      backward: (_name, dinp, dout, inp, N, C, OC) => {
        const k = this.kernels;
        const key = this.dropoutKey(index);
        const zs = a.get(`zs${index}`, N * r);
        // zs = s z with z = x A^T: dB += dout^T zs, and dz = s (dout B)
        const dz = a.get('dz', N * r);
        k.matmulBackward(dz, this.B(l.module, this.grads), null, dout, zs, this.B(l.module), N, r, OC, false);
        k.scale(dz, s, N * r);
        if (key === null) {
          k.matmulBackward(dinp, this.A(l.module, this.grads), null, dz, inp, this.A(l.module), N, C, r, true);
        } else {
          const x = a.get('xdrop', N * C);
          k.dropoutForward(x, inp, N * C, key, p);
          const dx = a.get('dxdrop', N * C);
          k.matmulBackward(dx, this.A(l.module, this.grads), null, dz, x, this.A(l.module), N, C, r, false);
          k.dropoutBackward(dinp, dx, N * C, key, p);
        }
        this.dropoutSteps[index] = (this.dropoutSteps[index]! + 1) >>> 0;
      },
    };
  }
}

/** Attach PEFT-initialised adapters to a model and freeze its base. */
export function attachLora<F, I>(model: DecoderBase<F, I>, settings: LoraSettings, opts: { seed?: number } = {}): LoraAdapters<F, I> {
  return new LoraAdapters(model, settings, opts).attach();
}
