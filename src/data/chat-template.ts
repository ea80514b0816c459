// Chat templates as transformers renders them: the model's Jinja template (tokenizer_config.json `chat_template`
// or chat_template.jinja) run by @huggingface/jinja with the special tokens as strings in scope.
//
// A template comes from a downloaded model folder, so rendering is bounded the way transformers' sandbox bounds
// it, and further: range() makes at most 100,000 items (jinja2's sandbox MAX_RANGE, which transformers uses);
// the work of one render (statements evaluated, loop iterations, range items) is capped; no string it makes may
// outgrow what the messages could sensibly render to. `{% for i in range(1e9) %}` took a gigabyte in a second
// and nested loops never finished; each now ends in an error naming the template's file.

import { Environment, Interpreter, Template } from '@huggingface/jinja';
import { briefly } from './errors.js';

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

/** A chat template that cannot be parsed or rendered; the message names the template's file. */
export class ChatTemplateError extends Error {
  override name = 'ChatTemplateError';
}

/** jinja2's sandbox MAX_RANGE, which transformers' chat template sandbox inherits. */
export const MAX_RANGE = 100_000;

/**
 * Statements evaluated, loop iterations run and range() items made in one render. Qwen3's template takes about 70
 * per message (228 for three, 34,000 for 500); 300,000 allows conversations of thousands of messages and, since
 * a loop iteration costs @huggingface/jinja some 15 microseconds, still ends in a few seconds whatever the loops.
 */
export const MAX_RENDER_STEPS = 300_000;

/** No string a render makes may be longer than this plus four times the text it was given. */
const OUTPUT_ALLOWANCE = 1024 * 1024;

class RenderBudget {
  private steps = 0;
  constructor(
    private readonly origin: string,
    readonly maxChars: number,
  ) {}
  charge(steps: number): void {
    this.steps += steps;
    if (this.steps > MAX_RENDER_STEPS) {
      throw new ChatTemplateError(
        `${this.origin}: the chat template did not finish within ${MAX_RENDER_STEPS.toLocaleString('en')} steps ` +
          '(loops nested too deep or too long?)',
      );
    }
  }
  checkLength(length: number): void {
    if (length > this.maxChars) {
      throw new ChatTemplateError(
        `${this.origin}: the chat template made a string of ${length.toLocaleString('en')} characters, more than ` +
          `${this.maxChars.toLocaleString('en')} for these messages`,
      );
    }
  }
}

/** What is used of @huggingface/jinja's Interpreter (its typings import "./runtime" without an extension, which
 * NodeNext resolution does not follow, so the class's members are not visible to TypeScript). */
interface JinjaValue {
  value: unknown;
}
interface JinjaInterpreter {
  run(program: unknown): JinjaValue;
  evaluate(statement: unknown, environment: Environment): JinjaValue;
  evaluateBlock(statements: unknown, environment: Environment): JinjaValue;
}

/**
 * An interpreter whose every evaluation and every block (each loop iteration's body, even an empty one) is
 * charged to the budget, and whose every string is measured. Wrapped on the instance: the methods call each other
 * through `this`, so every nested evaluation passes through the wrappers.
 */
function boundedInterpreter(env: Environment, budget: RenderBudget): JinjaInterpreter {
  const interpreter = new Interpreter(env) as unknown as JinjaInterpreter;
  const evaluate = interpreter.evaluate.bind(interpreter);
  const evaluateBlock = interpreter.evaluateBlock.bind(interpreter);
  const measured = (value: JinjaValue): JinjaValue => {
    if (typeof value.value === 'string') budget.checkLength(value.value.length);
    return value;
  };
  interpreter.evaluate = (statement, environment) => {
    budget.charge(1);
    return measured(evaluate(statement, environment));
  };
  interpreter.evaluateBlock = (statements, environment) => {
    budget.charge(1);
    return measured(evaluateBlock(statements, environment));
  };
  return interpreter;
}

/** strftime_now as @huggingface/jinja defines it, borrowed through a template because the library does not export it. */
const strftimeTemplate = new Template('{{ strftime_now(format) }}');

/** The globals Template.render sets up (its setupGlobals is not exported), with range() bounded. */
function setGlobals(env: Environment, budget: RenderBudget, origin: string): void {
  for (const [name, value] of [['false', false], ['true', true], ['none', null], ['False', false], ['True', true], ['None', null]] as const) {
    env.set(name, value);
  }
  env.set('raise_exception', (message: unknown) => {
    throw new ChatTemplateError(`${origin}: the chat template raised: ${String(message)}`);
  });
  env.set('strftime_now', (format: unknown) => strftimeTemplate.render({ format: String(format) }));
  env.set('range', (start: unknown, stop?: unknown, step: unknown = 1) => {
    const [from, to] = stop === undefined ? [0, start] : [start, stop];
    if (![from, to, step].every((n) => typeof n === 'number' && Number.isSafeInteger(n))) {
      throw new ChatTemplateError(`${origin}: the chat template called range() with arguments that are not integers`);
    }
    const [a, b, s] = [from, to, step] as number[];
    if (s === 0) throw new ChatTemplateError(`${origin}: the chat template called range() with a step of 0`);
    const length = Math.max(0, Math.ceil((b - a) / s));
    if (length > MAX_RANGE) {
      throw new ChatTemplateError(
        `${origin}: the chat template asked range() for ${length.toLocaleString('en')} items; at most ` +
          `${MAX_RANGE.toLocaleString('en')} are allowed, as in transformers' sandbox`,
      );
    }
    budget.charge(2 * length); // a for loop walks its items twice (filter, then body), the first time unseen here
    return Array.from({ length }, (_, i) => a + i * s);
  });
}

export class ChatTemplate {
  private readonly template: Template;
  constructor(
    readonly source: string,
    /** special tokens by name (bos_token, eos_token, ...), as templates expect them */
    private readonly specialTokens: Record<string, string>,
    /** where the template came from, for messages: ".../chat_template.jinja" */
    readonly origin = 'chat template',
  ) {
    try {
      this.template = new Template(source);
    } catch (err) {
      throw new ChatTemplateError(`${origin}: the chat template cannot be parsed (${briefly(err)})`);
    }
  }

  render(messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): string {
    if (opts.addGenerationPrompt && opts.continueFinalMessage) {
      throw new Error('chat template: addGenerationPrompt and continueFinalMessage cannot both be set');
    }
    const given = messages.reduce((n, m) => n + m.content.length + m.role.length, 0) +
      Object.values(this.specialTokens).reduce((n, t) => n + t.length, 0);
    const budget = new RenderBudget(this.origin, OUTPUT_ALLOWANCE + 4 * given);
    const env = new Environment();
    setGlobals(env, budget, this.origin);
    const items = {
      ...this.specialTokens,
      messages: messages.map((m) => ({ role: m.role, content: m.content })),
      add_generation_prompt: opts.addGenerationPrompt ?? false,
    };
    for (const [name, value] of Object.entries(items)) env.set(name, value);
    let rendered: string;
    try {
      const result = boundedInterpreter(env, budget).run(this.template.parsed);
      rendered = String(result.value);
    } catch (err) {
      if (err instanceof ChatTemplateError) throw err;
      // the interpreter's own errors (an undefined variable called, a stack overflowed by recursive macros)
      throw new ChatTemplateError(`${this.origin}: the chat template failed (${briefly(err)})`);
    }
    return opts.continueFinalMessage ? cutAfterFinalMessage(rendered, messages, this.origin) : rendered;
  }
}

/**
 * transformers' continue_final_message: render normally, then cut right after the final message's content so the
 * end-of-turn marker the template appends is gone and the model continues that message.
 */
function cutAfterFinalMessage(rendered: string, messages: readonly ChatMessage[], origin: string): string {
  const last = messages[messages.length - 1];
  if (!last) return rendered;
  for (const needle of [last.content, last.content.trim()]) {
    const at = rendered.lastIndexOf(needle);
    if (needle.length > 0 && at >= 0) return rendered.slice(0, at + needle.length);
  }
  throw new ChatTemplateError(
    `${origin}: the final ${last.role} message does not appear in the rendered chat, so it cannot be continued`,
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
