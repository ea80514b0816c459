// TRL's preference formats, normalised to the three strings that get tokenised:
//   explicit prompt      {prompt, chosen, rejected} as strings
//   conversational       the same fields as message lists [{role, content}], optional system
//   implicit prompt      only {chosen, rejected}; the prompt is their longest common prefix (HH-RLHF transcripts)
// Conversations go through the model's chat template the way TRL's maybe_apply_chat_template does.

import type { ChatMessage } from './chat-template.js';
import { DataError, type RowSource } from './errors.js';
import type { Tokenizer } from './tokenizer.js';

export interface ColumnNames {
  prompt?: string;
  chosen?: string;
  rejected?: string;
  system?: string;
}

/** A row in one of TRL's formats, prompt already extracted when it was implicit. */
export type PreferenceExample =
  | { kind: 'text'; implicitPrompt: boolean; prompt: string; chosen: string; rejected: string }
  | { kind: 'conversation'; implicitPrompt: boolean; prompt: ChatMessage[]; chosen: ChatMessage[]; rejected: ChatMessage[] };

/** What the tokenizer reads: prompt text (templated for conversations) and each response's text after it. */
export interface PreferenceText {
  prompt: string;
  chosen: string;
  rejected: string;
}

type Field = string | ChatMessage[] | null;

function messageContent(value: unknown): string | null {
  if (typeof value === 'string') return value;
  // multimodal-style content: [{type: "text", text: "..."}]; only text parts can be trained on here
  if (Array.isArray(value) && value.every((p) => typeof p === 'object' && p !== null && typeof p.text === 'string')) {
    return value.map((p: { text: string }) => p.text).join('');
  }
  return null;
}

function asField(value: unknown, name: string, source: RowSource): Field {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    return value.map((m, i) => {
      const role = typeof m === 'object' && m !== null ? (m as Record<string, unknown>).role : undefined;
      const content = typeof m === 'object' && m !== null ? messageContent((m as Record<string, unknown>).content) : null;
      if (typeof role !== 'string' || content === null) {
        throw new DataError(`field "${name}" message ${i} must be {role: string, content: string}`, source);
      }
      return { role, content };
    });
  }
  throw new DataError(`field "${name}" must be a string or a list of {role, content} messages, got ${typeof value}`, source);
}

function missingField(field: string, option: string, values: Record<string, unknown>, source: RowSource): DataError {
  const present = Object.keys(values);
  return new DataError(
    `missing field "${field}"; the row has ${present.length ? present.map((k) => `"${k}"`).join(', ') : 'no fields'}` +
      ` — name the column holding it with ${option}`,
    source,
  );
}

const asUser = (f: Field): ChatMessage[] => (typeof f === 'string' ? [{ role: 'user', content: f }] : f ?? []);
const asAssistant = (f: Field): ChatMessage[] => (typeof f === 'string' ? [{ role: 'assistant', content: f }] : f ?? []);

/** Reads one raw row into a preference example; errors name the field and the fields that do exist. */
export function parsePreferenceRow(values: Record<string, unknown>, columns: ColumnNames, source: RowSource): PreferenceExample {
  const names = { prompt: 'prompt', chosen: 'chosen', rejected: 'rejected', system: 'system', ...columns };
  if (!(names.chosen in values)) throw missingField(names.chosen, '--chosen-column', values, source);
  if (!(names.rejected in values)) throw missingField(names.rejected, '--rejected-column', values, source);
  if (columns.prompt !== undefined && !(names.prompt in values)) throw missingField(names.prompt, '--prompt-column', values, source);
  if (columns.system !== undefined && !(names.system in values)) throw missingField(names.system, '--system-column', values, source);

  const prompt = asField(values[names.prompt], names.prompt, source);
  const chosen = asField(values[names.chosen], names.chosen, source);
  const rejected = asField(values[names.rejected], names.rejected, source);
  const systemValue = values[names.system];
  if (systemValue !== undefined && systemValue !== null && typeof systemValue !== 'string') {
    throw new DataError(`field "${names.system}" must be a string`, source);
  }
  const system = typeof systemValue === 'string' && systemValue !== '' ? systemValue : null;
  const implicitPrompt = prompt === null;

  // a message list anywhere, or a system message, makes the row a conversation; strings then become turns
  const conversational = [prompt, chosen, rejected].some(Array.isArray) || system !== null;
  if (!conversational) {
    const text = { chosen: (chosen as string | null) ?? '', rejected: (rejected as string | null) ?? '' };
    if (!implicitPrompt) return { kind: 'text', implicitPrompt, prompt: prompt as string, ...text };
    const split = commonTextPrefix(text.chosen, text.rejected);
    return {
      kind: 'text',
      implicitPrompt,
      prompt: text.chosen.slice(0, split),
      chosen: text.chosen.slice(split),
      rejected: text.rejected.slice(split),
    };
  }
  let promptMessages = asUser(prompt);
  let chosenMessages = asAssistant(chosen);
  let rejectedMessages = asAssistant(rejected);
  if (implicitPrompt) {
    const shared = commonMessagePrefix(chosenMessages, rejectedMessages);
    promptMessages = chosenMessages.slice(0, shared);
    chosenMessages = chosenMessages.slice(shared);
    rejectedMessages = rejectedMessages.slice(shared);
  } else if (startsWith(chosenMessages, promptMessages) && startsWith(rejectedMessages, promptMessages)) {
    // prompt given and repeated at the head of both conversations (HuggingFaceH4/ultrafeedback_binarized):
    // the responses are what follows it, or the prompt would be rendered twice
    chosenMessages = chosenMessages.slice(promptMessages.length);
    rejectedMessages = rejectedMessages.slice(promptMessages.length);
  }
  if (system !== null && promptMessages[0]?.role !== 'system') {
    promptMessages = [{ role: 'system', content: system }, ...promptMessages];
  }
  return { kind: 'conversation', implicitPrompt, prompt: promptMessages, chosen: chosenMessages, rejected: rejectedMessages };
}

const isSpace = (c: string | undefined): boolean => c !== undefined && /\s/.test(c);

/**
 * Where an implicit text prompt ends: the longest common prefix of chosen and rejected, moved back so it ends at
 * the end of a word in both texts, and both responses start with the whitespace before their first differing
 * word. For HH-RLHF that is "...\n\nAssistant:" + " reply". TRL's extract_prompt agrees whenever the responses
 * differ from a word's first letter on, and otherwise cuts inside a word ("S" + "ure" vs "S" + "orry"; "I" + " am"
 * vs "I" + "t's"), which tokenises badly.
 */
export function commonTextPrefix(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  if (i === a.length && i === b.length) return 0; // identical: no prompt to find, the row is dropped as such
  // the end of a text counts as a word end: when one text is the other plus more, the shorter reply is empty
  const wordEnd = (s: string): boolean => (i === s.length || isSpace(s[i])) && !isSpace(s[i - 1]);
  while (i > 0 && !(wordEnd(a) && wordEnd(b))) i--; // both sides: "I| am" vs "I|t's" is inside a word
  return i;
}

const sameMessage = (a: ChatMessage, b: ChatMessage): boolean => a.role === b.role && a.content === b.content;

function startsWith(messages: readonly ChatMessage[], head: readonly ChatMessage[]): boolean {
  return head.length > 0 && head.length < messages.length && head.every((m, i) => sameMessage(m, messages[i]!));
}

function commonMessagePrefix(a: readonly ChatMessage[], b: readonly ChatMessage[]): number {
  let i = 0;
  while (i < a.length && i < b.length && sameMessage(a[i]!, b[i]!)) i++;
  // both lists identical: keep the last message as the response so the row reads as "chosen equals rejected"
  if (i === a.length && i === b.length && i > 0) i--;
  return i;
}

export type DropReason = 'empty_response' | 'chosen_equals_rejected' | 'identical_after_truncation' | 'invalid';

const isBlank = (side: string | ChatMessage[]): boolean =>
  typeof side === 'string' ? side.trim() === '' : side.every((m) => m.content.trim() === '');

const sameSide = (a: string | ChatMessage[], b: string | ChatMessage[]): boolean =>
  typeof a === 'string' || typeof b === 'string'
    ? a === b
    : a.length === b.length && a.every((m, i) => sameMessage(m, b[i]!));

/** Rows with nothing to learn from: an empty side, or the same response twice. */
export function unusableReason(example: PreferenceExample): DropReason | null {
  if (isBlank(example.chosen) || isBlank(example.rejected)) return 'empty_response';
  if (sameSide(example.chosen, example.rejected)) return 'chosen_equals_rejected';
  return null;
}

function sharedPrefixLength(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

/**
 * TRL's maybe_apply_chat_template for preference rows: the prompt is rendered with the generation prompt (or
 * left open when its last message is the assistant's), prompt+chosen and prompt+rejected are rendered whole, and
 * each response is what follows the prompt. The prompt is cut to its common prefix with both renders because some
 * templates render the assistant header differently with and without a reply (Qwen3 adds an empty <think> block).
 */
export function exampleToText(example: PreferenceExample, tokenizer: Tokenizer): PreferenceText {
  if (example.kind === 'text') return { prompt: example.prompt, chosen: example.chosen, rejected: example.rejected };
  const { prompt, chosen, rejected } = example;
  const last = prompt[prompt.length - 1];
  const promptText =
    prompt.length === 0
      ? ''
      : tokenizer.applyChatTemplate(prompt, {
          addGenerationPrompt: last?.role !== 'assistant',
          continueFinalMessage: last?.role === 'assistant',
        });
  const withChosen = tokenizer.applyChatTemplate([...prompt, ...chosen]);
  const withRejected = tokenizer.applyChatTemplate([...prompt, ...rejected]);
  const cut = Math.min(sharedPrefixLength(promptText, withChosen), sharedPrefixLength(promptText, withRejected));
  return { prompt: promptText.slice(0, cut), chosen: withChosen.slice(cut), rejected: withRejected.slice(cut) };
}
