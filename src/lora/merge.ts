// Folding adapters into the base weights: W (out,in) += scaling * B (out,r) A (r,in), after which the model
// computes the same function without hooks and saves as a plain Hugging Face model. Internally every linear
// weight is (out,in), so GPT-2's Conv1D needs no special case here (the transpose happens when it is saved).
import type { LoraAdapters } from './adapters.js';

/** Adds every adapter's update to its base weight and removes the hooks; the adapters must not be used after. */
export function mergeLora(adapters: LoraAdapters): void {
  const { model, settings, scaling } = adapters;
  const k = model.kernels;
  const r = settings.r;
  for (const l of adapters.layers) {
    const weight = model.param(l.module + '.weight');
    // scale the small factor, then one accumulating product into the weight
    const scaledB = model.alloc(l.outFeatures * r);
    scaledB.set(adapters.B(l.module));
    k.scale(scaledB, scaling, scaledB.length);
    k.gemm(weight, scaledB, adapters.A(l.module), l.outFeatures, l.inFeatures, r, false, false, true);
  }
  adapters.detach();
}
