// Learning-rate schedules exactly as transformers' `get_scheduler` defines them (LambdaLR multipliers on the
// base learning rate). Optimizer step k (0-based) uses multiplier(k): with warmup the very first step has
// lr 0, as in transformers. Pure functions of the step, so a resumed run recomputes the same values.

export const SCHEDULER_TYPES = ['linear', 'cosine', 'constant', 'constant_with_warmup', 'inverse_sqrt'] as const;
export type SchedulerType = (typeof SCHEDULER_TYPES)[number];

export interface ScheduleConfig {
  type: SchedulerType;
  baseLr: number;
  /** optimizer steps of linear warmup from 0 */
  warmupSteps: number;
  /** total optimizer steps of the run (the decay reaches 0 here for linear/cosine) */
  totalSteps: number;
}

/** transformers' `TrainingArguments.get_warmup_steps`: explicit steps win, else ceil(total * ratio). */
export function resolveWarmupSteps(totalSteps: number, warmupSteps: number, warmupRatio: number): number {
  return warmupSteps > 0 ? warmupSteps : Math.ceil(totalSteps * warmupRatio);
}

function warmupFactor(step: number, warmup: number): number {
  return step / Math.max(1, warmup);
}

/** The multiplier of the base learning rate at 0-based optimizer step `step`. */
export function lrMultiplier(s: ScheduleConfig, step: number): number {
  const { warmupSteps: warmup, totalSteps: total } = s;
  switch (s.type) {
    case 'constant':
      return 1;
    case 'constant_with_warmup':
      return step < warmup ? warmupFactor(step, warmup) : 1;
    case 'linear':
      if (step < warmup) return warmupFactor(step, warmup);
      return Math.max(0, (total - step) / Math.max(1, total - warmup));
    case 'cosine': {
      // num_cycles = 0.5: half a cosine from 1 down to 0 over the post-warmup steps
      if (step < warmup) return warmupFactor(step, warmup);
      const progress = (step - warmup) / Math.max(1, total - warmup);
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * 0.5 * 2 * progress)));
    }
    case 'inverse_sqrt': {
      // timescale defaults to the warmup length (10,000 without warmup), so the decay is continuous at its end
      if (step < warmup) return warmupFactor(step, warmup);
      const timescale = warmup > 0 ? warmup : 10_000;
      const shift = timescale - warmup;
      return 1 / Math.sqrt((step + shift) / timescale);
    }
  }
}

/** The learning rate at 0-based optimizer step `step`. */
export function learningRateAt(s: ScheduleConfig, step: number): number {
  return s.baseLr * lrMultiplier(s, step);
}
