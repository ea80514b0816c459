// Checks on a tokenizer.json before @huggingface/tokenizers builds it. The library trusts the file, and two of its
// numbers and strings decide how long loading and encoding take:
//
//   ids          vocabularies are stored as arrays indexed by id, so one added token with id 1e9 makes a sparse
//                array of a billion slots that every vocabulary walk visits (loading hung). Real tokenizers number
//                their tokens densely from 0, so an id may not exceed twice the number of tokens.
//   regexes      Split/Replace patterns run on every text. A repeated group that itself holds something repeated,
//                like (a+)+, can match one string in exponentially many ways, and a backtracking engine tries them
//                all when the match fails (an 80-character row hung). This is the one shape behind catastrophic
//                backtracking that no real tokenizer pattern has (GPT-2's, cl100k's, o200k's, Llama 3's, Qwen's,
//                DeepSeek's repeat only characters and classes), so it is refused outright.

import { DataError } from './errors.js';

const MAX_QUOTED = 80;
const quote = (text: string): string => JSON.stringify(text.length > MAX_QUOTED ? `${text.slice(0, MAX_QUOTED)}...` : text);

/** How many times a quantifier lets its atom repeat at most: ? 1, * and + unbounded, {n} n, {n,} unbounded, {n,m} m. */
function repetitions(quantifier: string): number {
  if (quantifier === '?') return 1;
  if (quantifier === '*' || quantifier === '+') return Infinity;
  const [, low = '', comma, high = ''] = /^\{(\d*)(,?)(\d*)\}$/.exec(quantifier) ?? [];
  if (!comma) return Number(low);
  return high === '' ? Infinity : Number(high);
}

/** Where a pattern repeats a group that holds an unbounded repetition, e.g. "(a+)+"; null when it does not. */
export function nestedRepetition(pattern: string): string | null {
  interface Group {
    start: number;
    /** the group holds a *, + or {n,} somewhere inside */
    holdsRepetition: boolean;
  }
  const stack: Group[] = [{ start: 0, holdsRepetition: false }];
  let lastGroup: Group | null = null; // the group just closed, which a quantifier would apply to
  let i = 0;
  const n = pattern.length;
  while (i < n) {
    const c = pattern[i]!;
    if (c === '\\') {
      i += 2; // an escaped character; \p{..} and \x{..} braces are skipped as plain characters below
      if (pattern[i - 1] === 'p' || pattern[i - 1] === 'P' || pattern[i - 1] === 'x') {
        if (pattern[i] === '{') i = Math.max(i, pattern.indexOf('}', i) + 1) || n;
      }
      lastGroup = null;
      continue;
    }
    if (c === '[') {
      // a character class: ends at the first ] that is not escaped and not the class's first character
      i++;
      if (pattern[i] === '^') i++;
      if (pattern[i] === ']') i++;
      let depth = 1; // oniguruma allows nested classes [a[b]]
      while (i < n && depth > 0) {
        if (pattern[i] === '\\') i++;
        else if (pattern[i] === '[') depth++;
        else if (pattern[i] === ']') depth--;
        i++;
      }
      lastGroup = null;
      continue;
    }
    if (c === '(') {
      stack.push({ start: i, holdsRepetition: false });
      lastGroup = null;
      i++;
      continue;
    }
    if (c === ')') {
      const group = stack.length > 1 ? stack.pop()! : null;
      if (group && group.holdsRepetition) stack[stack.length - 1]!.holdsRepetition = true;
      lastGroup = group;
      i++;
      continue;
    }
    const quantifier = /^(\*|\+|\?|\{\d*(,\d*)?\})/.exec(pattern.slice(i, i + 24));
    if (quantifier) {
      const q = quantifier[0];
      const upper = repetitions(q);
      const unbounded = upper === Infinity;
      // a possessive (a++) or atomic repetition never backtracks into its group; a lazy one (a+?) still does
      const possessive = pattern[i + q.length] === '+';
      if (lastGroup && lastGroup.holdsRepetition && upper > 1 && !possessive) {
        return pattern.slice(lastGroup.start, i + q.length);
      }
      if (unbounded) stack[stack.length - 1]!.holdsRepetition = true;
      i += q.length + (pattern[i + q.length] === '?' || possessive ? 1 : 0);
      lastGroup = null;
      continue;
    }
    lastGroup = null;
    i++;
  }
  return null;
}

/** Every {Regex: "..."} pattern in a tokenizer.json section, with where it is, for messages. */
function* regexPatterns(value: unknown, where: string, depth = 0): Generator<{ regex: string; where: string }> {
  if (depth > 32 || value === null || typeof value !== 'object') return;
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) yield* regexPatterns(item, `${where}[${i}]`, depth + 1);
    return;
  }
  const record = value as Record<string, unknown>;
  const pattern = record.pattern as { Regex?: unknown } | undefined;
  if (pattern && typeof pattern === 'object' && typeof pattern.Regex === 'string') {
    yield { regex: pattern.Regex, where: `${where}${typeof record.type === 'string' ? ` (${record.type})` : ''}` };
  }
  for (const [key, child] of Object.entries(record)) {
    if (key !== 'pattern') yield* regexPatterns(child, `${where}.${key}`, depth + 1);
  }
}

function checkIds(tokenizer: Record<string, unknown>, file: string): void {
  const model = tokenizer.model as { vocab?: unknown } | undefined;
  const vocab = model && typeof model === 'object' && model.vocab && typeof model.vocab === 'object' && !Array.isArray(model.vocab)
    ? Object.entries(model.vocab as Record<string, unknown>)
    : [];
  const added = Array.isArray(tokenizer.added_tokens) ? (tokenizer.added_tokens as unknown[]) : [];
  const tokens = (Array.isArray(model?.vocab) ? model.vocab.length : vocab.length) + added.length;
  const maxId = 2 * tokens + 1024;
  const check = (id: unknown, what: string): void => {
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0 || id > maxId) {
      throw new DataError(
        `${file}: ${what} has id ${typeof id === 'number' ? id : JSON.stringify(id)?.slice(0, 40)}; ids number the ` +
          `${tokens} tokens from 0, so it must be an integer from 0 to ${maxId} (is tokenizer.json corrupt?)`,
      );
    }
  };
  for (const [token, id] of vocab) check(id, `the vocabulary's token ${quote(token)}`);
  for (const [i, token] of added.entries()) {
    if (token === null || typeof token !== 'object' || typeof (token as { content?: unknown }).content !== 'string') {
      throw new DataError(`${file}: added_tokens[${i}] must be an object with a string "content" and an integer "id"`);
    }
    check((token as { id?: unknown }).id, `the added token ${quote((token as { content: string }).content)}`);
  }
}

function checkPatterns(tokenizer: Record<string, unknown>, file: string): void {
  for (const section of ['normalizer', 'pre_tokenizer', 'decoder']) {
    for (const { regex, where } of regexPatterns(tokenizer[section], section)) {
      const nested = nestedRepetition(regex);
      if (nested !== null) {
        throw new DataError(
          `${file}: the ${where} pattern ${quote(regex)} repeats a group that itself repeats (${quote(nested)}), ` +
            'which can take exponential time on some texts (catastrophic backtracking); no real tokenizer needs that',
        );
      }
    }
  }
}

/** Refuses a tokenizer.json whose ids or patterns would make loading or encoding take unbounded time. */
export function checkTokenizerJson(tokenizer: Record<string, unknown>, file: string): void {
  checkIds(tokenizer, file);
  checkPatterns(tokenizer, file);
}
