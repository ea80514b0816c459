// The embedded demo's ingredients, all generated (nothing to download): a preference task whose answers are
// objectively checkable — two-digit addition `07+45=`, chosen = the right sum `052`, rejected = a near miss
// (off by one or by ten, or two digits swapped) —, a character-level tokenizer written as a real tokenizer.json (so `orpo eval`
// and `orpo generate` work on the demo's output folder like on any Hugging Face folder), and a small
// Llama-style config.

import { Rng } from '../tensor/rng.js';

export interface TextPair {
  prompt: string;
  chosen: string;
  rejected: string;
}

const SPECIAL_TOKENS = ['<|pad|>', '<|bos|>', '<|eos|>'] as const;
const CHARS = [...'0123456789+='];

/** A character-level tokenizer as tokenizer.json: BPE with one token per character and no merges. */
export function demoTokenizerFiles(): Record<string, Record<string, unknown>> {
  const vocab: Record<string, number> = {};
  SPECIAL_TOKENS.forEach((t, i) => (vocab[t] = i));
  CHARS.forEach((ch, i) => (vocab[ch] = SPECIAL_TOKENS.length + i));
  const tokenizer = {
    version: '1.0', truncation: null, padding: null,
    added_tokens: SPECIAL_TOKENS.map((content, id) => ({
      id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer: null, pre_tokenizer: null, post_processor: null,
    decoder: { type: 'Fuse' },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: [],
    },
  };
  const special = { bos_token: '<|bos|>', eos_token: '<|eos|>', pad_token: '<|pad|>' };
  return {
    'tokenizer.json': tokenizer,
    'tokenizer_config.json': { ...special, add_bos_token: true, add_eos_token: false, model_max_length: 64, tokenizer_class: 'PreTrainedTokenizerFast' },
    'special_tokens_map.json': special,
  };
}

export const DEMO_VOCAB_SIZE = SPECIAL_TOKENS.length + CHARS.length;

/** The demo's ids for text, as the tokenizer.json above encodes it (one id per character). */
export function demoEncode(text: string): number[] {
  return [...text].map((ch) => {
    const i = CHARS.indexOf(ch);
    if (i < 0) throw new Error(`demo tokenizer: no token for ${JSON.stringify(ch)}`);
    return SPECIAL_TOKENS.length + i;
  });
}

export interface DemoModelSize {
  hiddenSize: number;
  layers: number;
  heads: number;
  intermediateSize: number;
}

/** config.json of a small Llama (RMSNorm, RoPE, grouped-query attention, SwiGLU). */
export function demoModelConfig(size: DemoModelSize): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'], model_type: 'llama',
    vocab_size: DEMO_VOCAB_SIZE, hidden_size: size.hiddenSize, intermediate_size: size.intermediateSize,
    num_hidden_layers: size.layers, num_attention_heads: size.heads, num_key_value_heads: Math.max(1, size.heads / 2),
    max_position_embeddings: 32, rms_norm_eps: 1e-5, rope_theta: 10000, hidden_act: 'silu',
    tie_word_embeddings: false, initializer_range: 0.02, attention_bias: false, mlp_bias: false,
    bos_token_id: 1, eos_token_id: 2, pad_token_id: 0, torch_dtype: 'float32',
  };
}

// Fixed width (operands 2 digits, sums 3, zero padded) puts every digit at a fixed position, which a small
// model learns far faster than variable-length numbers; the answer is still checkable at a glance.
const operand = (x: number): string => String(x).padStart(2, '0');
const sum = (x: number): string => String(x).padStart(3, '0');

/** A wrong answer a careless solver would give: off by one, off by ten, or the last two digits swapped. */
export function nearMiss(answer: number, rng: Rng): number {
  for (;;) {
    const kind = rng.int(4);
    let wrong: number;
    if (kind === 0) wrong = answer + 1;
    else if (kind === 1) wrong = answer - 1;
    else if (kind === 2) wrong = answer + (rng.int(2) === 0 ? 10 : -10);
    else wrong = Math.floor(answer / 100) * 100 + (answer % 10) * 10 + Math.floor(answer / 10) % 10;
    if (wrong >= 0 && wrong !== answer) return wrong;
  }
}

/**
 * `a+b=` with a, b in [0, 100): every problem appears at most once, and no held-out problem (nor its
 * mirror b+a) is in the training set, so held-out accuracy measures generalisation, not memory.
 */
export function arithmeticTask(seed: number, nTrain: number, nEval: number): { train: TextPair[]; eval: TextPair[] } {
  const rng = new Rng(seed);
  const problems: [number, number][] = [];
  for (let a = 0; a < 100; a++) for (let b = a; b < 100; b++) problems.push([a, b]);
  rng.shuffle(problems);
  if (nTrain + nEval > problems.length) throw new Error(`arithmeticTask: at most ${problems.length} problems`);
  const toPair = ([a, b]: [number, number]): TextPair => {
    const [x, y] = rng.int(2) === 0 ? [a, b] : [b, a];
    const answer = x + y;
    return { prompt: `${operand(x)}+${operand(y)}=`, chosen: sum(answer), rejected: sum(nearMiss(answer, rng)) };
  };
  return { eval: problems.slice(0, nEval).map(toPair), train: problems.slice(nEval, nEval + nTrain).map(toPair) };
}

/** Is a generated answer right? (The check that makes the task objective.) */
export function checkAnswer(prompt: string, completion: string): boolean {
  const m = /^(\d+)\+(\d+)=$/.exec(prompt);
  return m !== null && completion.trim() === sum(Number(m[1]) + Number(m[2]));
}
