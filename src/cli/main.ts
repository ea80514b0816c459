#!/usr/bin/env node
// The `orpo` command: dispatches to a subcommand and turns errors into one clear line and an exit code
// (2 = bad options, 1 = anything else; ORPO_DEBUG=1 prints the stack).

import { OptionError, suggestOption } from '../train/options.js';

type Command = (argv: readonly string[]) => Promise<number>;

// each command's module is loaded only when it runs, so `orpo --help` and small commands start fast
const COMMANDS: Record<string, { load: () => Promise<Command>; about: string }> = {
  demo: { load: async () => (await import('./demo.js')).runDemo, about: 'train a small model on a generated arithmetic preference task and report (nothing to download)' },
  train: { load: async () => (await import('./train.js')).runTrain, about: 'fine-tune a Hugging Face model folder with ORPO (or --method sft, dpo, simpo) on preference data' },
  compare: { load: async () => (await import('./compare.js')).runCompare, about: 'train several methods (sft, dpo, orpo, simpo, sft+dpo) on the same data and compare them side by side' },
  eval: { load: async () => (await import('./eval.js')).runEval, about: "a method's metrics (ORPO's by default) of a model folder on a preference dataset" },
  generate: { load: async () => (await import('./generate.js')).runGenerate, about: 'generate text from a model folder (greedy or sampled)' },
  merge: { load: async () => (await import('./merge.js')).runMergeCommand, about: 'fold a trained LoRA adapter into its base model and write a plain model folder' },
  data: { load: async () => (await import('./data.js')).runDataCommand, about: 'inspect a dataset as the model will see it (data stats, data show)' },
  export: { load: async () => (await import('./export.js')).runExport, about: 'write a model (or a LoRA adapter) as GGUF for llama.cpp, node-llama-cpp, Ollama, LM Studio' },
  web: { load: async () => (await import('./web.js')).runWeb, about: 'serve the in-browser trainer (npm run build:web) on localhost and print its address' },
};

const USAGE = `Usage: orpo <command> [options]   (orpo <command> --help for its options; orpo --version)

ORPO (odds-ratio preference optimisation, Hong et al. 2024) for causal language models.

Commands:
${Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)}${c.about}`).join('\n')}
`;

/** this package's version, from its package.json (dist/src/cli/ -> the package root) */
async function packageVersion(): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  const pkg = JSON.parse(await readFile(new URL('../../../package.json', import.meta.url), 'utf8')) as { name: string; version: string };
  return `${pkg.name} ${pkg.version}`;
}

export async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--version' || name === '-v') {
    process.stdout.write(`${await packageVersion()}\n`);
    return 0;
  }
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(USAGE);
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (command === undefined) {
    const hint = suggestOption(name, Object.keys(COMMANDS));
    process.stderr.write(`orpo: unknown command '${name}'${hint === null ? '' : ` (did you mean ${hint}?)`}\n\n${USAGE}`);
    return 2;
  }
  try {
    return await (await command.load())(rest);
  } catch (e) {
    const error = e as Error;
    process.stderr.write(`orpo ${name}: error: ${error.message}\n`);
    if (process.env['ORPO_DEBUG'] === '1') process.stderr.write(`${error.stack}\n`);
    return e instanceof OptionError ? 2 : 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
