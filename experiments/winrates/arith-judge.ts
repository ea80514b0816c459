// The exact judge of the arithmetic comparison (the demo's task, src/train/demo-task.ts): a completion of
// "a+b=" scores 1 when it starts with the exact three-digit, zero-padded sum ("12+07=" -> "019"), else 0.
// Pointwise: `orpo compare --judge dist/experiments/winrates/arith-judge.js` calls score(prompt, completion).

/** The right answer of a demo prompt "a+b=" as the demo writes it (three digits, zero padded), or null. */
export function expectedAnswer(prompt: string): string | null {
  const m = /^(\d+)\+(\d+)=$/.exec(prompt.trim());
  return m === null ? null : String(Number(m[1]) + Number(m[2])).padStart(3, '0');
}

/** 1 when the completion starts with the exact sum, 0 otherwise; throws on a prompt that is not "a+b=". */
export function score(prompt: string, completion: string): number {
  const answer = expectedAnswer(prompt);
  if (answer === null) throw new Error(`arith judge: prompt ${JSON.stringify(prompt)} is not of the form a+b=`);
  return completion.startsWith(answer) ? 1 : 0;
}

export const RULE = '1 when the greedy completion starts with the exact three-digit sum, else 0';

export default score;
