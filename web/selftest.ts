// `?selftest`: the built-in demo trained in the page, sized to reach held-out preference accuracy >= 0.9 on the
// TypeScript backend in well under a minute. `orpo demo` trains hidden 64 x 2 layers for 3,000 steps; this narrower
// model with 4 heads of 8 dimensions, a wider MLP, batch 32, η 7e-3 after 10% warm-up and AdamW β2 0.99 (which
// adapts faster than 0.999 over a short run) gets there in 800 steps: natively, held-out accuracy 0.95-1.0 over
// seeds 1-5 (600 steps: 0.70-1.0, too close to the edge for a test).
import type { DemoModelSize } from '../src/train/demo-task.js';
import type { TrainChoices } from '../src/web/session.js';

export const SELFTEST = {
  size: { hiddenSize: 32, layers: 2, heads: 4, intermediateSize: 128 } satisfies DemoModelSize,
  seed: 1,
  trainPairs: 3000,
  evalPairs: 200,
  choices: {
    method: 'orpo', beta: 0.5, sft_scope: 'response', learning_rate: 7e-3, max_steps: 800, per_device_train_batch_size: 32,
    per_device_eval_batch_size: 50, lr_scheduler_type: 'linear', warmup_ratio: 0.1, adam_beta2: 0.99, seed: 1,
    max_length: 16, max_prompt_length: 8, logging_steps: 10,
  } satisfies TrainChoices,
  /** the prompt whose next-token logits the page shows for checking the downloaded model */
  prompt: '12+07=',
} as const;
