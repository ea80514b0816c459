// Building and running the C++ kernel harnesses (native/test/*.cc) as npm ci builds the addon: binding.gyp's own
// flags, compiled off the event loop so the builds overlap, their JSON lines read back. Shared by
// native-arm64.test.ts (the NEON build under qemu) and native-amx.test.ts (AMX on emulated tiles).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './shared.js';

export const nativeDir = join(repoRoot, 'native');

/** binding.gyp's flags: every kernel build's (target_defaults), and the AVX-512 library's own flags and sources */
export function gypFlags(): { common: string[]; avx512: string[]; avx512Sources: string[] } {
  const gyp = readFileSync(join(repoRoot, 'binding.gyp'), 'utf8');
  const strings = (list: string): string[] => [...list.matchAll(/"([^"]+)"/g)].map((m) => m[1]!);
  const common = /"cflags_cc":\s*\[([^\]]*)\]/.exec(gyp);
  assert.ok(common, 'binding.gyp: no cflags_cc list');
  const target = gyp.slice(gyp.indexOf('"target_name": "orpo_kernels_avx512"'));
  const sources = /"sources":\s*\[([^\]]*)\]/.exec(target);
  const own = /"cflags_cc":\s*\[([^\]]*)\]/.exec(target);
  assert.ok(sources && own, 'binding.gyp: no orpo_kernels_avx512 target with sources and cflags_cc');
  return { common: strings(common[1]!), avx512: strings(own[1]!), avx512Sources: strings(sources[1]!) };
}

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** runs a command to completion without blocking the event loop, so several builds and runs overlap */
export function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code) => resolve({
      code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'),
      seconds: (performance.now() - started) / 1000,
    }));
  });
}

/** a harness's JSON lines: its checks and the summary line it must reach (a crash never prints one) */
export function harnessLines<C extends object, S extends { summary: true }>(what: string, r: Run): { checks: C[]; summary: S } {
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as C | S);
  const summary = lines.find((l): l is S => 'summary' in l);
  assert.ok(summary, `${what}: the harness stopped before its summary (exit ${r.code})\n${r.stderr}\n${r.stdout.slice(-2000)}`);
  return { checks: lines.filter((l): l is C => !('summary' in l)), summary };
}
