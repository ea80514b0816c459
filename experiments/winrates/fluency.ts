// A fluency check beside the rule judge of the stories comparison: the rule only asks whether a story keeps to its
// character, so a model could win it with text that is no longer a story. Each judged completion is scored by the
// untrained stories260K (the model whose stories the preference data were sampled from): its mean log-prob per
// token given the prompt. Higher = more like the stories the starting model writes; a sharp drop means the method
// bought its rule score with text the pretrained model finds unlikely.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodePrompt, loadModel, loadTokenizer } from '../../src/index.js';
import { estimate, type Estimate } from '../../src/compare/win-rates.js';

export interface Fluency {
  model: string;
  /** per contestant: mean over completions of the base model's mean log-prob per completion token */
  meanLogprob: Record<string, Estimate>;
  /** completions left out because they are empty */
  empty: Record<string, number>;
}

/** Mean log-prob per token of `completion` after `prompt` under the model (one forward over the whole row). */
export function completionLogprob(model: Awaited<ReturnType<typeof loadModel>>, promptIds: readonly number[], completionIds: readonly number[]): number {
  const ids = [...promptIds, ...completionIds];
  const T = ids.length;
  const { hiddenSize: C, vocabSize: V } = model.config;
  const { hidden } = model.forward(Int32Array.from(ids), 1, T);
  const logits = new Float32Array(T * V);
  model.headLogits(logits, hidden, T);
  let sum = 0;
  for (let t = promptIds.length; t < T; t++) {
    // row t - 1 predicts token t
    const row = logits.subarray((t - 1) * V, t * V);
    let max = -Infinity;
    for (let v = 0; v < V; v++) if (row[v]! > max) max = row[v]!;
    let z = 0;
    for (let v = 0; v < V; v++) z += Math.exp(row[v]! - max);
    sum += row[ids[t]!]! - max - Math.log(z);
  }
  return sum / completionIds.length;
}

/** Scores every contestant's generations in compareDir/generations/ under the model in modelDir. */
export async function fluencyOf(compareDir: string, modelDir: string, contestants: readonly string[]): Promise<Fluency> {
  const model = await loadModel(modelDir);
  model.kernels.setThreads(1);
  const tokenizer = await loadTokenizer(modelDir);
  const meanLogprob: Record<string, Estimate> = {};
  const empty: Record<string, number> = {};
  for (const who of contestants) {
    const file = join(compareDir, 'generations', `${who}.jsonl`);
    if (!existsSync(file)) continue;
    const rows = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as { prompt: string; completion: string });
    const values: number[] = [];
    empty[who] = 0;
    for (const r of rows) {
      const completionIds = tokenizer.encode(r.completion);
      if (completionIds.length === 0) {
        empty[who]!++;
        continue;
      }
      values.push(completionLogprob(model, encodePrompt(tokenizer, r.prompt), completionIds));
    }
    meanLogprob[who] = estimate(values);
  }
  return { model: modelDir, meanLogprob, empty };
}
