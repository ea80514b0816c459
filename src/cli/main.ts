#!/usr/bin/env node
// The `orpo` command: dispatches to a subcommand and turns errors into one clear line and an exit code
// (2 = bad options, 1 = anything else; ORPO_DEBUG=1 prints the stack).

import { runDemo } from './demo.js';
import { runEval } from './eval.js';
import { runGenerate } from './generate.js';
import { runTrain } from './train.js';
import { OptionError } from '../train/options.js';

const COMMANDS: Record<string, { run: (argv: readonly string[]) => Promise<number>; about: string }> = {
  demo: { run: runDemo, about: 'train a small model on a generated arithmetic preference task and report (nothing to download)' },
  train: { run: runTrain, about: 'fine-tune a Hugging Face model folder with ORPO on preference data' },
  eval: { run: runEval, about: 'ORPO metrics of a model folder on a preference dataset' },
  generate: { run: runGenerate, about: 'generate text from a model folder (greedy or sampled)' },
  data: { run: runData, about: 'inspect a dataset as the model will see it (data stats, data show)' },
};

// `orpo data` lives in ./data.js (the data layer's command); loaded on use so the other commands never wait on it
async function runData(argv: readonly string[]): Promise<number> {
  const path = './data.js';
  const mod = (await import(path)) as { runDataCommand: (argv: readonly string[]) => Promise<number> };
  return mod.runDataCommand(argv);
}

const USAGE = `Usage: orpo <command> [options]   (orpo <command> --help for its options)

ORPO (odds-ratio preference optimisation, Hong et al. 2024) for causal language models.

Commands:
${Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)}${c.about}`).join('\n')}
`;

export async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(USAGE);
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (command === undefined) {
    process.stderr.write(`orpo: unknown command '${name}'\n\n${USAGE}`);
    return 2;
  }
  try {
    return await command.run(rest);
  } catch (e) {
    const error = e as Error;
    process.stderr.write(`orpo ${name}: error: ${error.message}\n`);
    if (process.env['ORPO_DEBUG'] === '1') process.stderr.write(`${error.stack}\n`);
    return e instanceof OptionError ? 2 : 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
