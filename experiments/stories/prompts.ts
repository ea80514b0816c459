// Templated story openings that name one character: name x opening x detail x follow-up sentence. Train and eval
// prompts are disjoint by (name, opening) cell: a seeded quarter of the cells is held out for evaluation, so no
// eval prompt shares both its character and its opening with a training prompt (every name and every opening
// still occurs on both sides, the distribution is the same).

import { Rng } from '../../src/index.js';
import { STORY_NAMES } from './judge.js';

export type Gender = 'girl' | 'boy';

/** Prompt characters: names stories260K spells and repeats readily (from its own samples). */
export const PROMPT_NAMES: Readonly<Record<Gender, readonly string[]>> = Object.freeze({
  girl: ['Lily', 'Sue', 'Amy', 'Anna', 'Lucy', 'Mia', 'Sara', 'Jane', 'Emma', 'Molly', 'Sally', 'Lisa', 'Ellie', 'Lila', 'Daisy'],
  boy: ['Tim', 'Tom', 'Ben', 'Max', 'Sam', 'Jack', 'Bob', 'Billy', 'John', 'Leo', 'Mark', 'Jim', 'Fred', 'Joey', 'Pete'],
});

const pronoun = (g: Gender): { he: string; his: string } => (g === 'girl' ? { he: 'She', his: 'her' } : { he: 'He', his: 'his' });

/** adjectives and places the openings take as their detail */
export const ADJECTIVES = ['little', 'happy', 'kind', 'curious', 'brave', 'shy', 'small', 'good'] as const;
export const PLACES = ['park', 'beach', 'forest', 'garden', 'store', 'zoo', 'farm', 'lake'] as const;

/** openings: (gender, name, detail index) -> first sentence */
export const OPENINGS: readonly ((g: Gender, name: string, d: number) => string)[] = [
  (g, n, d) => `Once upon a time, there was a ${ADJECTIVES[d]} ${g} named ${n}.`,
  (g, n, d) => `One day, a little ${g} named ${n} went to the ${PLACES[d]}.`,
  (g, n, d) => `${n} was a ${ADJECTIVES[d]} ${g} who lived in a small house.`,
  (g, n, d) => `There was once a ${ADJECTIVES[d]} ${g} called ${n}.`,
  (g, n, d) => `Once upon a time, in a big town, there lived a ${ADJECTIVES[d]} ${g} named ${n}.`,
  (g, n, d) => `One sunny morning, ${n} went to the ${PLACES[d]} with ${pronoun(g).his} mom.`,
  (g, n, d) => `Once upon a time, a ${ADJECTIVES[d]} ${g} named ${n} found a ball in the ${PLACES[d]}.`,
  (g, n, d) => `${n} was a ${ADJECTIVES[d]} ${g}. Every day, ${n} played in the ${PLACES[d]}.`,
];

/** optional second sentence (index 0: none) */
export const FOLLOW_UPS: readonly ((g: Gender) => string)[] = [
  () => '',
  (g) => ` ${pronoun(g).he} loved to play with ${pronoun(g).his} toys.`,
  (g) => ` ${pronoun(g).he} liked to run and jump.`,
  (g) => ` ${pronoun(g).he} had a red ball.`,
  (g) => ` ${pronoun(g).he} wanted to make a new friend.`,
  (g) => ` ${pronoun(g).he} was very hungry.`,
  (g) => ` ${pronoun(g).he} loved the sun.`,
  (g) => ` ${pronoun(g).he} liked to help ${pronoun(g).his} dad.`,
];

export interface StoryPrompt {
  prompt: string;
  name: string;
  gender: Gender;
  opening: number;
  detail: number;
  followUp: number;
}

export function renderPrompt(p: Omit<StoryPrompt, 'prompt'>): string {
  return OPENINGS[p.opening]!(p.gender, p.name, p.detail) + FOLLOW_UPS[p.followUp]!(p.gender);
}

/** Every template combination, in a fixed order. */
export function allPrompts(): StoryPrompt[] {
  const out: StoryPrompt[] = [];
  for (const gender of ['girl', 'boy'] as const) {
    for (const name of PROMPT_NAMES[gender]) {
      for (let opening = 0; opening < OPENINGS.length; opening++) {
        for (let detail = 0; detail < ADJECTIVES.length; detail++) {
          for (let followUp = 0; followUp < FOLLOW_UPS.length; followUp++) {
            const p = { name, gender, opening, detail, followUp };
            out.push({ ...p, prompt: renderPrompt(p) });
          }
        }
      }
    }
  }
  return out;
}

export function shuffle<T>(xs: T[], rng: Rng): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rng.uniform() * (i + 1));
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}

/** The held-out (name, opening) cells: for each name, EVAL_OPENINGS_PER_NAME of the openings, chosen by seed. */
export const EVAL_OPENINGS_PER_NAME = 2;

export function heldOutCells(seed: number): Set<string> {
  const rng = new Rng(seed ^ 0x5eed);
  const cells = new Set<string>();
  for (const gender of ['girl', 'boy'] as const) {
    for (const name of PROMPT_NAMES[gender]) {
      const openings = shuffle(OPENINGS.map((_, i) => i), rng).slice(0, EVAL_OPENINGS_PER_NAME);
      for (const o of openings) cells.add(`${name}/${o}`);
    }
  }
  return cells;
}

/**
 * `train` and `eval` prompts, disjoint by (name, opening) cell and each drawn without repeats from its side's
 * combinations, shuffled by seed.
 */
export function splitPrompts(trainCount: number, evalCount: number, seed: number): { train: StoryPrompt[]; eval: StoryPrompt[] } {
  const held = heldOutCells(seed);
  const all = allPrompts();
  const trainPool = all.filter((p) => !held.has(`${p.name}/${p.opening}`));
  const evalPool = all.filter((p) => held.has(`${p.name}/${p.opening}`));
  if (trainCount > trainPool.length || evalCount > evalPool.length) {
    throw new Error(`at most ${trainPool.length} train and ${evalPool.length} eval prompts exist; asked for ${trainCount} and ${evalCount}`);
  }
  const rng = new Rng(seed);
  return { train: shuffle(trainPool, rng).slice(0, trainCount), eval: shuffle(evalPool, rng).slice(0, evalCount) };
}

// every prompt character must be one the judge knows
for (const n of [...PROMPT_NAMES.girl, ...PROMPT_NAMES.boy]) {
  if (!STORY_NAMES.includes(n)) throw new Error(`prompt name ${n} is not in STORY_NAMES`);
}
