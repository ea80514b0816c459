// llama.cpp as the referee of GGUF export, through node-llama-cpp's prebuilt CPU binaries (a pinned
// devDependency). One Llama instance per test process; its log lines are collected so tests can check that a
// file loads without a warning. Tests skip, with the reason, only when the binaries cannot be loaded here.
import type { Llama, LlamaContext, LlamaContextSequence, LlamaModel, Token } from 'node-llama-cpp';

export interface LogLine {
  level: string;
  message: string;
}

/** every log line llama.cpp has written in this process, in order */
export const llamaLog: LogLine[] = [];

let instance: Promise<Llama | string> | null = null;

/** The Llama instance, or the reason it cannot be loaded (a message for `t.skip`). */
export async function llamaCpp(): Promise<Llama | string> {
  instance ??= (async () => {
    try {
      const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
      return await getLlama({
        gpu: false,
        build: 'never',
        logLevel: LlamaLogLevel.warn,
        logger: (level, message) => llamaLog.push({ level: String(level), message }),
      });
    } catch (e) {
      return `skipped: node-llama-cpp cannot load llama.cpp here (${(e as Error).message.split('\n')[0]})`;
    }
  })();
  return instance;
}

/**
 * Warnings and errors llama.cpp logged since log position `from` (what a clean load must not produce). Log lines
 * reach JavaScript through the event loop, so this first lets the ones already written arrive.
 */
export async function complaintsSince(from: number): Promise<string[]> {
  await new Promise((resolve) => setTimeout(resolve, 50));
  return llamaLog.slice(from).filter((l) => l.level === 'warn' || l.level === 'error' || l.level === 'fatal')
    .map((l) => l.message.trim()).filter((m) => m !== '');
}

export interface LoadedGguf {
  model: LlamaModel;
  context: LlamaContext;
  /** the context's one sequence, cleared before each use */
  sequence: LlamaContextSequence;
  dispose(): Promise<void>;
}

/** Loads a GGUF file (and optionally a LoRA adapter GGUF over it) on the CPU, with a small context. */
export async function loadGguf(llama: Llama, modelPath: string, opts: { lora?: string; contextSize?: number } = {}): Promise<LoadedGguf> {
  const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
  const context = await model.createContext({
    contextSize: opts.contextSize ?? 64,
    batchSize: opts.contextSize ?? 64,
    threads: 1,
    // llama.cpp's default f16 cache would round every key and value (about 1e-3 in log-probs): the comparisons
    // are about the exported file, so the cache keeps float32
    experimentalKvCacheKeyType: 'F32',
    experimentalKvCacheValueType: 'F32',
    flashAttention: false,
    ...(opts.lora === undefined ? {} : { lora: { adapters: [{ filePath: opts.lora, scale: 1 }] } }),
  });
  return {
    model,
    context,
    sequence: context.getSequence(),
    async dispose() {
      await context.dispose();
      await model.dispose();
    },
  };
}

/**
 * llama.cpp's next-token log-probabilities after every prefix of `tokens`: row t (t = 0 .. length-1) is
 * log p(· | tokens[0..t]) over the whole vocabulary, from the probabilities node-llama-cpp computes from the raw
 * logits (greedy sampler: no temperature, no filtering).
 */
export async function llamaNextLogprobs(loaded: LoadedGguf, tokens: readonly number[]): Promise<Float64Array[]> {
  const sequence = loaded.sequence;
  await sequence.clearHistory();
  {
    const input = tokens.map((t) => [t as Token, { generateNext: { probabilities: true } }] as [Token, { generateNext: { probabilities: boolean } }]);
    const out = await sequence.controlledEvaluate(input);
    return out.map((item, t) => {
      const probabilities = item?.next.probabilities;
      if (probabilities === undefined) throw new Error(`llama.cpp returned no probabilities after token ${t}`);
      const row = new Float64Array(probabilities.size).fill(-Infinity);
      for (const [token, p] of probabilities) row[token] = Math.log(p);
      return row;
    });
  }
}

/** llama.cpp's greedy continuation of `tokens`: n new tokens, each the argmax llama.cpp's greedy sampler picks. */
export async function llamaGreedy(loaded: LoadedGguf, tokens: readonly number[], n: number): Promise<number[]> {
  const sequence = loaded.sequence;
  await sequence.clearHistory();
  {
    const result: number[] = [];
    let input: readonly number[] = tokens;
    for (let i = 0; i < n; i++) {
      const items = input.map((t, j) => (j === input.length - 1
        ? [t as Token, { generateNext: { token: true, options: { temperature: 0 } } }] as const
        : t as Token));
      const out = await sequence.controlledEvaluate(items as Parameters<typeof sequence.controlledEvaluate>[0]);
      const next = out[input.length - 1]?.next.token;
      if (next === undefined || next === null) throw new Error(`llama.cpp generated no token after ${result.length} tokens`);
      result.push(next);
      input = [next];
    }
    return result;
  }
}
