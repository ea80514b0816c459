// A Hugging Face tokenizer.json as the vocabulary llama.cpp tokenises with (src/llama-vocab.cpp), so that
// llama.cpp's ids for a text are orpo-ts's ids. Two kinds are expressible:
//   - byte-level BPE (GPT-2, SmolLM, Llama 3, Qwen2/Qwen3): `tokenizer.ggml.model` "gpt2", the tokens in their byte-level
//     spelling, the merges, and `tokenizer.ggml.pre`, the name under which llama.cpp knows the pre-tokenizer's
//     regular expression. Only the expressions llama.cpp implements are accepted, matched on their exact text.
//   - SentencePiece-style BPE with byte fallback (Llama 2, Mistral, TinyStories): `tokenizer.ggml.model` "llama".
//     llama.cpp merges the adjacent pair whose concatenation has the highest score, where transformers merges the
//     pair of lowest merge rank; a token's score is therefore minus the rank of the first merge producing it,
//     which orders merges identically provided every pair of tokens that concatenates to a token is a merge
//     (true of every tokenizer converted from SentencePiece; checked, and refused otherwise).
// Special tokens, add_bos/add_eos and the chat template come from tokenizer_config.json as orpo-ts reads them.

import type { Tokenizer } from '../../data/tokenizer.js';
import type { ModelConfig } from '../../model/types.js';
import type { GgufMetadata } from './encode.js';

/** llama_token_type values (tokenizer.ggml.token_type). */
export const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

type Json = Record<string, unknown>;

/**
 * The pre-tokenizer expressions llama.cpp implements (llm_tokenizer_bpe's regex_exprs), keyed by the exact
 * pattern text tokenizer.json holds, with the `tokenizer.ggml.pre` name llama.cpp selects them by and whether
 * llama.cpp then uses whole-word vocabulary hits before merging (ignore_merges).
 */
const BPE_PRE_TOKENIZERS: readonly { pattern: string; pre: string; ignoreMerges: boolean; who: string }[] = [
  {
    pattern: "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
    pre: 'gpt-2', ignoreMerges: false, who: 'GPT-2',
  },
  {
    pattern: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    pre: 'llama-bpe', ignoreMerges: true, who: 'Llama 3',
  },
  {
    pattern: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    pre: 'qwen2', ignoreMerges: false, who: 'Qwen2/Qwen3',
  },
];
const GPT2_PATTERN = BPE_PRE_TOKENIZERS[0]!.pattern;

function refuse(why: string): never {
  throw new Error(`cannot export this tokenizer to GGUF: ${why}`);
}

function obj(v: unknown): Json | null {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : null;
}

function describe(v: unknown): string {
  const o = obj(v);
  return o === null ? JSON.stringify(v) : String(o.type ?? JSON.stringify(o).slice(0, 80));
}

export type VocabKind =
  | { model: 'gpt2'; pre: string }
  | { model: 'llama'; addSpacePrefix: boolean };

/** Decides how llama.cpp can tokenise like this tokenizer.json, or says why it cannot. */
export function classifyTokenizer(tokenizerJson: Json): VocabKind {
  const model = obj(tokenizerJson.model);
  if (model === null || model.type !== 'BPE') {
    refuse(`its model is ${describe(tokenizerJson.model)}; only BPE tokenizers (byte-level or SentencePiece-style) map onto llama.cpp's`);
  }
  if (model.byte_fallback === true) return classifySentencePiece(tokenizerJson);
  return { model: 'gpt2', pre: classifyByteLevel(tokenizerJson, model.ignore_merges === true) };
}

function classifyByteLevel(tokenizerJson: Json, ignoreMerges: boolean): string {
  const normalizer = obj(tokenizerJson.normalizer);
  // NFC (Qwen) leaves text that is already composed unchanged, which is what text from the wild is
  if (normalizer !== null && normalizer.type !== 'NFC') {
    refuse(`its normalizer ${describe(normalizer)} has no equivalent in llama.cpp's BPE tokenizer`);
  }
  const pre = obj(tokenizerJson.pre_tokenizer);
  let pattern: string | null = null;
  const byteLevelOk = (p: Json, usesRegex: boolean): boolean =>
    p.type === 'ByteLevel' && p.add_prefix_space !== true && (p.use_regex ?? true) === usesRegex;
  let digitsFirst = false;
  if (pre !== null && byteLevelOk(pre, true)) pattern = GPT2_PATTERN;
  else if (pre !== null && pre.type === 'Sequence' && Array.isArray(pre.pretokenizers) && pre.pretokenizers.length === 2 &&
    obj(pre.pretokenizers[0])?.type === 'Digits' && obj(pre.pretokenizers[0])?.individual_digits === true &&
    byteLevelOk(obj(pre.pretokenizers[1]) ?? {}, true)) {
    // SmolLM: every digit on its own, then GPT-2's expression
    pattern = GPT2_PATTERN;
    digitsFirst = true;
  } else if (pre !== null && pre.type === 'Sequence' && Array.isArray(pre.pretokenizers) && pre.pretokenizers.length === 2) {
    const [split, byteLevel] = pre.pretokenizers.map(obj);
    const regex = obj(split?.pattern)?.Regex;
    if (split?.type === 'Split' && typeof regex === 'string' && split.behavior === 'Isolated' && split.invert !== true &&
      byteLevel !== null && byteLevel !== undefined && byteLevelOk(byteLevel, false)) {
      pattern = regex;
    }
  }
  if (pattern === null) {
    refuse(`its pre-tokenizer ${describe(pre)} is not one llama.cpp implements (a ByteLevel pre-tokenizer, ` +
      'or a Split by a known expression followed by ByteLevel without a prefix space)');
  }
  const decoder = obj(tokenizerJson.decoder);
  if (decoder !== null && decoder.type !== 'ByteLevel') refuse(`its decoder ${describe(decoder)} is not ByteLevel`);
  if (digitsFirst) {
    if (ignoreMerges) refuse("its BPE model has ignore_merges=true, but llama.cpp's 'smollm' tokenizer merges every word");
    return 'smollm';
  }
  const known = BPE_PRE_TOKENIZERS.find((p) => p.pattern === pattern);
  if (known === undefined) {
    refuse(`its pre-tokenizer splits by ${JSON.stringify(pattern)}, which is not one of the expressions llama.cpp ` +
      `implements (${BPE_PRE_TOKENIZERS.map((p) => p.who).join(', ')})`);
  }
  if (known.ignoreMerges !== ignoreMerges) {
    refuse(`its BPE model has ignore_merges=${ignoreMerges}, but llama.cpp's '${known.pre}' tokenizer uses ${known.ignoreMerges}`);
  }
  return known.pre;
}

function classifySentencePiece(tokenizerJson: Json): VocabKind {
  const normalizer = obj(tokenizerJson.normalizer);
  const pre = obj(tokenizerJson.pre_tokenizer);
  // the legacy Llama form: normalizer Prepend("▁") + Replace(" " -> "▁"), no pre-tokenizer
  if (normalizer !== null && pre === null && normalizer.type === 'Sequence' && Array.isArray(normalizer.normalizers)) {
    const steps = normalizer.normalizers.map(obj);
    const isPrepend = (s: Json | null): boolean => s?.type === 'Prepend' && s.prepend === '▁';
    const isReplace = (s: Json | null): boolean => s?.type === 'Replace' && obj(s.pattern)?.String === ' ' && s.content === '▁';
    const prepend = steps.length === 2 && isPrepend(steps[0]!) && isReplace(steps[1]!);
    if (prepend || (steps.length === 1 && isReplace(steps[0]!))) return { model: 'llama', addSpacePrefix: prepend };
  }
  // the newer form: Metaspace pre-tokenizer without splitting
  if (normalizer === null && pre !== null && pre.type === 'Metaspace' && pre.replacement === '▁' && pre.split !== true) {
    const scheme = pre.prepend_scheme ?? (pre.add_prefix_space === false ? 'never' : 'always');
    if (scheme !== 'never') {
      // llama.cpp puts "▁" in front of the text and of the text after every special token, always; Metaspace
      // skips it where the text already starts with a space ("always") or after special tokens ("first")
      refuse(`its Metaspace pre-tokenizer (prepend_scheme "${String(scheme)}") prepends "▁" differently from llama.cpp's ` +
        'SentencePiece tokenizer (which always prepends it at the start and after every special token), so some texts ' +
        'would tokenise differently; the legacy form (normalizer Prepend("▁") + Replace(" ", "▁"), as transformers ' +
        'writes with legacy=True) is exported exactly');
    }
    return { model: 'llama', addSpacePrefix: false };
  }
  return refuse(`a byte-fallback BPE tokenizer with normalizer ${describe(normalizer)} and pre-tokenizer ${describe(pre)} ` +
    "does not behave like SentencePiece, which llama.cpp's 'llama' tokenizer implements");
}

interface AddedToken {
  id: number;
  content: string;
  special: boolean;
}

function addedTokens(tokenizerJson: Json): AddedToken[] {
  const list = Array.isArray(tokenizerJson.added_tokens) ? tokenizerJson.added_tokens : [];
  const tokens = list.map(obj).filter((t): t is Json => t !== null && typeof t.id === 'number' && typeof t.content === 'string');
  for (const t of tokens) {
    // transformers then eats the white space around the token or matches it only as a whole word; a GGUF file
    // has no way to tell llama.cpp so
    if (t.lstrip === true || t.rstrip === true || t.single_word === true) {
      refuse(`the added token ${JSON.stringify(t.content)} is matched with lstrip/rstrip/single_word, which llama.cpp does not do`);
    }
  }
  return tokens.map((t) => ({ id: t.id as number, content: t.content as string, special: t.special === true }));
}

/** tokenizer.json merges as pairs: written as "a b" strings (older files) or [a, b] arrays (newer). */
export function mergePairs(model: Json): [string, string][] {
  const merges = Array.isArray(model.merges) ? model.merges : [];
  return merges.map((m, i) => {
    if (typeof m === 'string') {
      const space = m.indexOf(' ', 1);
      if (space < 0) refuse(`merge ${i} ${JSON.stringify(m)} is not two tokens separated by a space`);
      return [m.slice(0, space), m.slice(space + 1)];
    }
    if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') return [m[0], m[1]];
    return refuse(`merge ${i} ${JSON.stringify(m)} is neither "a b" nor ["a", "b"]`);
  });
}

const BYTE_TOKEN = /^<0x[0-9A-F]{2}>$/;

/**
 * Added tokens llama.cpp treats as control tokens whatever the file says (it warns and overrides the type), so
 * they are written as control tokens, as convert_hf_to_gguf.py's does_token_look_special does: <|...|>, <｜...｜>.
 */
function looksLikeControlToken(text: string): boolean {
  return (text.startsWith('<|') && text.endsWith('|>')) || (text.startsWith('<｜') && text.endsWith('｜>'));
}

/**
 * SentencePiece scores reproducing the merge order (see the top of this file): a token's score is minus the
 * rank of the first merge producing it; tokens no merge produces score 0 (they are never a merge's result).
 * Refuses a vocabulary where two tokens concatenate to a third without a merge saying so, since llama.cpp
 * would merge them where transformers does not.
 */
export function sentencePieceScores(vocab: ReadonlyMap<string, number>, merges: readonly [string, string][],
  mergeable: (token: string) => boolean): Map<string, number> {
  const scores = new Map<string, number>();
  const pairs = new Set<string>();
  merges.forEach(([a, b], rank) => {
    const token = a + b;
    if (!vocab.has(token)) refuse(`merge ${rank} (${JSON.stringify(a)}, ${JSON.stringify(b)}) makes ${JSON.stringify(token)}, which is not in the vocabulary`);
    if (!scores.has(token)) scores.set(token, -rank);
    pairs.add(`${a}\u0000${b}`);
  });
  for (const token of vocab.keys()) {
    if (!mergeable(token)) continue;
    const chars = Array.from(token);
    for (let k = 1; k < chars.length; k++) {
      const a = chars.slice(0, k).join('');
      const b = chars.slice(k).join('');
      if (mergeable(a) && mergeable(b) && vocab.has(a) && vocab.has(b) && !pairs.has(`${a}\u0000${b}`)) {
        refuse(`${JSON.stringify(a)} + ${JSON.stringify(b)} concatenate to the token ${JSON.stringify(token)} but are no merge; ` +
          "llama.cpp's SentencePiece tokenizer would merge them, so its ids would differ");
      }
    }
  }
  return scores;
}

export interface VocabInput {
  /** tokenizer.json, parsed */
  tokenizerJson: Json;
  /** the same tokenizer as orpo-ts encodes with (special tokens, add_bos, chat template) */
  tokenizer: Tokenizer;
  /** tokenizer_config.json, parsed ({} when absent) */
  tokenizerConfig: Json;
  config: ModelConfig;
}

/** The tokenizer.* metadata of a GGUF file for this tokenizer and a model with config.vocabSize embedding rows. */
export function vocabMetadata(input: VocabInput): GgufMetadata {
  const { tokenizerJson, tokenizer, tokenizerConfig, config } = input;
  const kind = classifyTokenizer(tokenizerJson);
  const model = obj(tokenizerJson.model)!;
  const vocabObject = obj(model.vocab);
  if (vocabObject === null) refuse('its BPE model has no vocab object');
  const byId = new Map<number, string>();
  const vocab = new Map<string, number>();
  for (const [token, id] of Object.entries(vocabObject)) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) refuse(`token ${JSON.stringify(token)} has id ${JSON.stringify(id)}`);
    byId.set(id, token);
    vocab.set(token, id);
  }
  const added = addedTokens(tokenizerJson);
  const addedById = new Map(added.map((t) => [t.id, t]));
  for (const t of added) byId.set(t.id, t.content);
  const n = config.vocabSize;
  let largest = -1;
  for (const id of byId.keys()) largest = Math.max(largest, id);
  if (largest >= n) {
    refuse(`token id ${largest} (${JSON.stringify(byId.get(largest))}) has no row in the model's ${n}-row embedding (config.json vocab_size)`);
  }

  const tokens: string[] = new Array<string>(n);
  const types = new Int32Array(n);
  const scores = new Float32Array(n);
  const unkToken = typeof model.unk_token === 'string' ? model.unk_token : null;
  const merges = mergePairs(model);
  let sentencePiece: Map<string, number> | null = null;
  if (kind.model === 'llama') {
    for (let b = 0; b < 256; b++) {
      const byteToken = `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
      if (!vocab.has(byteToken)) refuse(`byte fallback is on but the byte token ${byteToken} is missing`);
    }
    const mergeable = (t: string): boolean => vocab.has(t) && !BYTE_TOKEN.test(t) && t !== unkToken && !addedById.has(vocab.get(t)!);
    sentencePiece = sentencePieceScores(vocab, merges, mergeable);
  }
  for (let id = 0; id < n; id++) {
    const text = byId.get(id);
    const addedToken = addedById.get(id);
    if (text === undefined) {
      // embedding rows beyond the tokenizer (Qwen pads to a multiple of 128), as convert_hf_to_gguf.py names them
      tokens[id] = `[PAD${id}]`;
      types[id] = TOKEN_TYPE.unused;
      scores[id] = -1000;
    } else if (addedToken !== undefined) {
      const control = addedToken.special || looksLikeControlToken(text);
      // llama.cpp matches user-defined tokens against raw text, where SentencePiece's "▁" is a plain space
      tokens[id] = control || kind.model === 'gpt2' ? text : text.replaceAll('▁', ' ');
      types[id] = control ? TOKEN_TYPE.control : TOKEN_TYPE.userDefined;
      scores[id] = -1000;
    } else {
      tokens[id] = text;
      if (kind.model === 'llama' && BYTE_TOKEN.test(text)) types[id] = TOKEN_TYPE.byte;
      else if (text === unkToken) types[id] = TOKEN_TYPE.unknown;
      else types[id] = TOKEN_TYPE.normal;
      scores[id] = sentencePiece?.get(text) ?? 0;
    }
  }
  // llama.cpp maps each spelling to one id and aborts on a vocabulary where two ids share one
  const seen = new Map<string, number>();
  for (let id = 0; id < n; id++) {
    const text = tokens[id]!;
    if (text === '') refuse(`token ${id} is the empty string, which llama.cpp cannot hold`);
    const other = seen.get(text);
    if (other !== undefined) refuse(`tokens ${other} and ${id} are both spelled ${JSON.stringify(text)}; llama.cpp needs one id per spelling`);
    seen.set(text, id);
  }

  const m: GgufMetadata = new Map();
  m.set('tokenizer.ggml.model', { type: 'string', value: kind.model });
  m.set('tokenizer.ggml.pre', { type: 'string', value: kind.model === 'gpt2' ? kind.pre : 'default' });
  m.set('tokenizer.ggml.tokens', { type: 'string[]', value: tokens });
  if (kind.model === 'llama') m.set('tokenizer.ggml.scores', { type: 'f32[]', value: scores });
  m.set('tokenizer.ggml.token_type', { type: 'i32[]', value: types });
  if (kind.model === 'gpt2') m.set('tokenizer.ggml.merges', { type: 'string[]', value: merges.map(([a, b]) => `${a} ${b}`) });
  if (kind.model === 'llama') m.set('tokenizer.ggml.add_space_prefix', { type: 'bool', value: kind.addSpacePrefix });

  const firstEos = Array.isArray(config.eosTokenId) ? config.eosTokenId[0] ?? null : config.eosTokenId;
  const bos = tokenizer.bosTokenId ?? config.bosTokenId;
  const eos = tokenizer.eosTokenId ?? firstEos;
  const unk = unkToken === null ? null : vocab.get(unkToken) ?? null;
  for (const [key, id] of [['bos', bos], ['eos', eos], ['unknown', unk], ['padding', tokenizer.padTokenId]] as const) {
    if (id === null) continue;
    if (id < 0 || id >= n) refuse(`${key} token id ${id} is outside the ${n}-token vocabulary`);
    m.set(`tokenizer.ggml.${key}_token_id`, { type: 'u32', value: id });
  }
  m.set('tokenizer.ggml.add_bos_token', { type: 'bool', value: tokenizer.addBosToken });
  m.set('tokenizer.ggml.add_eos_token', { type: 'bool', value: addsEos(tokenizer, tokenizerConfig) });
  if (tokenizer.chatTemplate !== null) m.set('tokenizer.chat_template', { type: 'string', value: tokenizer.chatTemplate });
  return m;
}

// add_eos_token in the config is what slow tokenizers obey; fast ones append EOS in their post-processor
function addsEos(tokenizer: Tokenizer, tokenizerConfig: Json): boolean {
  if (typeof tokenizerConfig.add_eos_token === 'boolean') return tokenizerConfig.add_eos_token;
  const eos = tokenizer.eosTokenId;
  if (eos === null) return false;
  const ids = tokenizer.encode('a', { addSpecialTokens: true });
  const plain = tokenizer.encode('a');
  return ids.length > plain.length && ids[ids.length - 1] === eos && plain[plain.length - 1] !== eos;
}
