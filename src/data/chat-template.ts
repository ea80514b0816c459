// Chat templates as transformers renders them: the model's Jinja template (tokenizer_config.json `chat_template`
// or chat_template.jinja) run by @huggingface/jinja with the special tokens as strings in scope.

import { Template } from '@huggingface/jinja';

export interface ChatMessage {
  role: string;
  content: string;
}

export interface ChatTemplateOptions {
  /** append the assistant header so the model continues as the assistant (TRL: last prompt message is the user's) */
  addGenerationPrompt?: boolean;
  /** leave the last message open, no end-of-turn after it (TRL: last prompt message is the assistant's) */
  continueFinalMessage?: boolean;
}

export class ChatTemplate {
  private readonly template: Template;
  constructor(
    readonly source: string,
    /** special tokens by name (bos_token, eos_token, ...), as templates expect them */
    private readonly specialTokens: Record<string, string>,
  ) {
    this.template = new Template(source);
  }

  render(messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): string {
    if (opts.addGenerationPrompt && opts.continueFinalMessage) {
      throw new Error('chat template: addGenerationPrompt and continueFinalMessage cannot both be set');
    }
    const rendered = this.template.render({
      ...this.specialTokens,
      messages: messages.map((m) => ({ role: m.role, content: m.content })),
      add_generation_prompt: opts.addGenerationPrompt ?? false,
    });
    return opts.continueFinalMessage ? cutAfterFinalMessage(rendered, messages) : rendered;
  }
}

/**
 * transformers' continue_final_message: render normally, then cut right after the final message's content so the
 * end-of-turn marker the template appends is gone and the model continues that message.
 */
function cutAfterFinalMessage(rendered: string, messages: readonly ChatMessage[]): string {
  const last = messages[messages.length - 1];
  if (!last) return rendered;
  for (const needle of [last.content, last.content.trim()]) {
    const at = rendered.lastIndexOf(needle);
    if (needle.length > 0 && at >= 0) return rendered.slice(0, at + needle.length);
  }
  throw new Error(
    `chat template: the final ${last.role} message does not appear in the rendered chat, so it cannot be continued`,
  );
}

/** tokenizer_config.json `chat_template`: a string, or a list of named templates of which "default" is used. */
export function pickChatTemplate(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const named = value.filter(
      (t): t is { name: string; template: string } =>
        typeof t === 'object' && t !== null && typeof t.name === 'string' && typeof t.template === 'string',
    );
    return (named.find((t) => t.name === 'default') ?? named[0])?.template ?? null;
  }
  return null;
}
