// The judge of the stories experiment: a fixed rule a program checks, standing in for the paper's reward model /
// GPT-4 judge. "The story keeps to the character named in the prompt":
//
//   score(prompt, completion) = [the completion mentions the prompt's character by name]
//                               − (number of distinct OTHER story names the completion mentions)
//
// so the score is 1 (pass) exactly when the completion names the prompt's character again and brings in no other
// named person, 0 when it does neither or both with one intruder, and negative for each further intruder. Higher is
// better; `passes` is score >= 1.
//
// A name is matched as a whole word with its exact capitalisation: "Mia" and "Mia's" count, "Miami", "MIA" and
// "mia" do not; "Tim" does not match inside "Timmy" (which is a different name on the list). The prompt's
// character is the first listed name the prompt contains; every listed name the prompt contains is exempt from the
// intruder count. Pets and toys (Spot, Teddy, Whiskers, ...) are not on the list: only people's names are.

/**
 * People's names that appear in TinyStories and that stories260K writes (collected from its own samples, plus the
 * usual TinyStories cast). Words that are also common capitalised English words at a sentence start were left off
 * (May, Will, Joy, Teddy, Kitty, Rose).
 */
export const STORY_NAMES: readonly string[] = Object.freeze([
  // girls
  'Lily', 'Sue', 'Susie', 'Amy', 'Anna', 'Ann', 'Lucy', 'Mia', 'Mimi', 'Sara', 'Sarah', 'Jane', 'Kate', 'Katie', 'Zoe',
  'Emma', 'Ella', 'Ellie', 'Emily', 'Jill', 'Jenny', 'Molly', 'Sally', 'Lisa', 'Mary', 'Marie', 'Lila', 'Daisy',
  'Rosie', 'Mandy', 'Bella',
  // boys
  'Tim', 'Timmy', 'Tom', 'Tommy', 'Ben', 'Benny', 'Max', 'Sam', 'Sammy', 'Jack', 'Bob', 'Bobby', 'Billy', 'Bill',
  'Joe', 'Joey', 'John', 'Johnny', 'Jake', 'Leo', 'Mark', 'Jim', 'Jimmy', 'Mike', 'Fred', 'Pete', 'Peter', 'Dan',
  'Danny', 'Ted', 'Ollie', 'Toby', 'Robby',
]);

/** One line for reports. */
export const RULE =
  'keeps to the character named in the prompt: +1 if the completion mentions that name again (whole word, exact ' +
  'capitalisation), -1 for each distinct other story name it mentions (STORY_NAMES minus the prompt\'s names); ' +
  'pass = score 1';

/** The score a completion must reach to pass. */
export const PASS_SCORE = 1;

const isLetter = (c: string | undefined): boolean => c !== undefined && /\p{L}/u.test(c);

/** Whether `text` contains `name` as a whole word with exactly that capitalisation. */
export function mentions(text: string, name: string): boolean {
  for (let at = text.indexOf(name); at >= 0; at = text.indexOf(name, at + 1)) {
    if (!isLetter(text[at - 1]) && !isLetter(text[at + name.length])) return true;
  }
  return false;
}

/** The listed names a text mentions, in the order of STORY_NAMES. */
export function namesIn(text: string): string[] {
  return STORY_NAMES.filter((n) => mentions(text, n));
}

/** The prompt's character: the listed name that occurs first in the prompt (null when it names none). */
export function promptCharacter(prompt: string): string | null {
  let best: string | null = null;
  let bestAt = Infinity;
  for (const name of namesIn(prompt)) {
    for (let at = prompt.indexOf(name); at >= 0; at = prompt.indexOf(name, at + 1)) {
      if (!isLetter(prompt[at - 1]) && !isLetter(prompt[at + name.length])) {
        if (at < bestAt) [best, bestAt] = [name, at];
        break;
      }
    }
  }
  return best;
}

export interface Judgement {
  score: number;
  pass: boolean;
  /** the prompt's character */
  character: string;
  /** whether the completion names it again */
  mentionsCharacter: boolean;
  /** other listed names the completion brings in */
  intruders: string[];
}

/** The score with its reasons. Throws when the prompt names no listed character (the rule does not apply). */
export function judge(prompt: string, completion: string): Judgement {
  const character = promptCharacter(prompt);
  if (character === null) {
    throw new Error(`judge: the prompt names no character from STORY_NAMES, so the rule does not apply: ${JSON.stringify(prompt)}`);
  }
  const exempt = new Set(namesIn(prompt));
  const mentionsCharacter = mentions(completion, character);
  const intruders = namesIn(completion).filter((n) => !exempt.has(n));
  const score = (mentionsCharacter ? 1 : 0) - intruders.length;
  return { score, pass: score >= PASS_SCORE, character, mentionsCharacter, intruders };
}

/** score(prompt, completion): higher is better; 1 = passes. */
export function score(prompt: string, completion: string): number {
  return judge(prompt, completion).score;
}

export function passes(prompt: string, completion: string): boolean {
  return judge(prompt, completion).pass;
}

export default score;
