// The paper's §7.3 second cost question, from `orpo compare` results: what does each method - and the whole
// SFT→DPO pipeline - spend to first reach the held-out margin single-stage ORPO ends with? Reads results.json files
// (committed under experiments/winrates/results/), finds for each method the first evaluation whose
// eval_mean_logps/margin (mean log p(chosen) − mean log p(rejected) per token, held out) reaches the target, and
// charges it the run's measured cost pro rata by step: wall seconds and tokens through the policy and the reference.
// sft+dpo is charged per stage: its SFT stage is the sft run of the same comparison (the same run, reused by
// compare), its DPO stage the rest.
//
//   node dist/experiments/pipeline/time-to-margin.js [--out FILE.md] RESULTS.json...

import { readFileSync, writeFileSync } from 'node:fs';
import type { CompareResults, MethodRun } from '../../src/compare/results.js';

const MARGIN = 'eval_mean_logps/margin';

interface Reached {
  method: string;
  step: number | null;
  seconds: number;
  policyTokens: number;
  referenceTokens: number;
}

/** the cost of a run up to `step`, pro rata within each stage */
function costTo(run: MethodRun, step: number, sft: MethodRun | undefined): Omit<Reached, 'method' | 'step'> {
  const stages: { steps: number; seconds: number; policy: number; reference: number }[] = [];
  if (run.name === 'sft+dpo' && sft !== undefined) {
    stages.push({ steps: sft.steps, seconds: sft.wall_seconds, policy: sft.forward_tokens, reference: sft.reference_forward_tokens });
    stages.push({ steps: run.steps - sft.steps, seconds: run.wall_seconds - sft.wall_seconds, policy: run.forward_tokens - sft.forward_tokens,
      reference: run.reference_forward_tokens - sft.reference_forward_tokens });
  } else stages.push({ steps: run.steps, seconds: run.wall_seconds, policy: run.forward_tokens, reference: run.reference_forward_tokens });
  const out = { seconds: 0, policyTokens: 0, referenceTokens: 0 };
  let left = step;
  for (const s of stages) {
    const f = Math.min(1, Math.max(0, left / s.steps));
    out.seconds += f * s.seconds;
    out.policyTokens += f * s.policy;
    out.referenceTokens += f * s.reference;
    left -= s.steps;
  }
  return out;
}

export function timeToMargin(r: CompareResults, target: number): Reached[] {
  const sft = r.runs.find((x) => x.name === 'sft');
  return r.runs.map((run) => {
    const hit = run.curve.find((p) => (p[MARGIN] ?? -Infinity) >= target);
    const step = hit === undefined ? null : hit['step']!;
    return { method: run.name, step, ...(step === null ? { seconds: NaN, policyTokens: NaN, referenceTokens: NaN } : costTo(run, step, sft)) };
  });
}

function main(): void {
  const args = process.argv.slice(2);
  const outAt = args.indexOf('--out');
  const out = outAt >= 0 ? args[outAt + 1]! : null;
  const files = outAt < 0 ? args : args.filter((_, i) => i !== outAt && i !== outAt + 1);
  if (files.length === 0) throw new Error('usage: time-to-margin.js [--out FILE.md] RESULTS.json...');
  const lines: string[] = [];
  for (const file of files) {
    const r = JSON.parse(readFileSync(file, 'utf8')) as CompareResults;
    const orpo = r.runs.find((x) => x.name === 'orpo');
    if (orpo === undefined) throw new Error(`${file}: no orpo run`);
    const target = orpo.final[MARGIN]!;
    lines.push(`### ${file}`, '', `Target: ORPO's final held-out margin, ${target.toFixed(4)} (start ${orpo.curve[0]![MARGIN]!.toFixed(4)}).`, '',
      '| method | reached at step | wall s (pro rata) | policy tokens | reference tokens | final margin |', '|---|---|---|---|---|---|');
    for (const x of timeToMargin(r, target)) {
      const run = r.runs.find((m) => m.name === x.method)!;
      const f = (v: number, d = 0): string => (Number.isFinite(v) ? v.toFixed(d) : '–');
      lines.push(`| ${x.method} | ${x.step ?? `not within ${run.steps}`} | ${f(x.seconds, 1)} | ${f(x.policyTokens)} | ${f(x.referenceTokens)} | ${run.final[MARGIN]!.toFixed(4)} |`);
    }
    lines.push('');
  }
  const text = `${lines.join('\n')}\n`;
  if (out === null) process.stdout.write(text);
  else writeFileSync(out, text);
}

if (process.argv[1]?.endsWith('time-to-margin.js')) main();
