// Targets that misbehave on purpose, one per failure the fuzz runner must recognise (test/fuzz-harness.test.ts).

export function returns(): number {
  return 1;
}

export function namesFile(file: string): never {
  throw new Error(`${file}: broken on purpose`);
}

export function namesNothing(): never {
  throw new Error('something is wrong');
}

export function engineError(file: string): never {
  throw new TypeError(`${file}: cannot read properties of undefined`);
}

export function throwsString(): never {
  throw 'a string'; // eslint-disable-line no-throw-literal
}

export function longMessage(file: string): never {
  throw new Error(`${file}: ${'x'.repeat(10_000)}`);
}

export function spins(): void {
  for (;;);
}

export async function spinsAsync(): Promise<void> {
  await new Promise(() => {}); // never settles, and keeps nothing alive: the timeout must still catch it
}

export function backtracks(): boolean {
  return /^(a+)+$/.test('a'.repeat(40) + '!');
}

export function eatsMemory(): number {
  const hoard: number[][] = [];
  for (;;) hoard.push(new Array(1000).fill(1.5));
}

export function exits(): void {
  process.exit(3);
}

export async function leavesRejection(file: string): Promise<void> {
  void Promise.reject(new Error('a read nobody awaited'));
  throw new Error(`${file}: the clean error`);
}

export async function leavesLateRejection(file: string): Promise<void> {
  setTimeout(() => void Promise.reject(new Error('late')), 0);
  throw new Error(`${file}: the clean error`);
}
