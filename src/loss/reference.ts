// DPO's reference model: a frozen model whose summed response log-probs the objective compares against. Three
// kinds, one interface: a separate model (`--ref-model DIR`, or one frozen copy of the initial policy), the
// policy itself with its LoRA adapters switched off (PEFT's disable_adapter(): no second copy of the weights),
// and log-probs computed once before training (precompute_ref_log_probs; the trainer keeps those).
import type { PackedBatch } from '../data/collate.js';
import type { CausalLM } from '../model/types.js';
import type { TokenLogprobHead } from './logprob-head.js';
import type { ReferenceLogps } from './objective.js';
import { defaultHeadFor, responseLogps, scoreBatch } from './sequence-logps.js';

export interface ReferenceModel {
  /** what it is, for the log */
  readonly description: string;
  /** the batch's summed response log-probs under the reference; forward only, no gradients */
  logps(batch: PackedBatch): Promise<ReferenceLogps>;
  /** real tokens run through the reference model so far (cost accounting) */
  readonly tokens: number;
}

/** the adapters of a LoRA model, switched off and on (LoraAdapters' detach/attach) */
export interface SwitchableAdapters {
  detach(): void;
  attach(): unknown;
}

/**
 * A reference computed by `model`: a separate frozen model, or - with `adapters` - the policy with its adapters
 * switched off for the forward. Must run before the policy's own forward of the same step when it is the same
 * model (that forward's saved activations would be overwritten).
 */
export function modelReference<F, I>(model: CausalLM<F, I>, opts: { head?: TokenLogprobHead<F, I>; sharePrompt?: boolean;
  adapters?: SwitchableAdapters; description: string }): ReferenceModel {
  let tokens = 0;
  return {
    description: opts.description,
    get tokens() { return tokens; },
    async logps(batch: PackedBatch): Promise<ReferenceLogps> {
      opts.adapters?.detach();
      try {
        const scored = await scoreBatch(model, batch, { head: opts.head ?? defaultHeadFor(model), sharePrompt: opts.sharePrompt });
        tokens += scored.tokens;
        const s = { ...scored.scores, reference: null };
        return { chosen: responseLogps(s, false, 0, batch.nPairs), rejected: responseLogps(s, false, batch.nPairs, batch.nPairs) };
      } finally {
        opts.adapters?.attach();
      }
    },
  };
}
