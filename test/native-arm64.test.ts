// The NEON kernels run, not only compile: native/test/parity.cc (every kernel of the table on odd sizes, each
// output against a float64 reference computed in the harness) is built twice from the same sources with
// binding.gyp's flags, for x86-64 (the generic table, the build native-parity.test.ts already checks against the
// TypeScript reference) and for aarch64 (the NEON table), and the aarch64 one runs under qemu-aarch64. Both must
// pass every check, run the same cases, and agree with each other element by element.
//
// Needs Debian's g++-aarch64-linux-gnu and qemu-user-static (.ci/run installs them); skips, saying so, without.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gypFlags, harnessLines, nativeDir, run, type Run } from './helpers/native-build.js';

const CROSS = 'aarch64-linux-gnu-g++';
const QEMU = 'qemu-aarch64-static';
const SYSROOT = '/usr/aarch64-linux-gnu'; // the cross compiler's libc, for qemu's dynamic loader

function missingTools(): string[] {
  return ['g++', CROSS, QEMU].filter((tool) => spawnSync(tool, ['--version'], { stdio: 'ignore' }).error !== undefined);
}

const missing = missingTools();
const skip = missing.length
  ? `needs ${missing.join(' and ')} (Debian: apt-get install g++-aarch64-linux-gnu qemu-user-static; .ci/run installs them)`
  : false;

const native = nativeDir;

/** the kernel names of native/kernels.h's table (its function-pointer members) */
function tableKernels(): string[] {
  const header = readFileSync(join(native, 'kernels.h'), 'utf8');
  const table = header.slice(header.indexOf('struct KernelTable'));
  return [...table.slice(0, table.indexOf('};')).matchAll(/\(\*(\w+)\)\(/g)].map((m) => m[1]);
}

/** the harness, the generic kernel table, the pool and the cache detection, each compiled concurrently, then linked */
async function build(compiler: string, flags: string[], output: string, cwd: string): Promise<void> {
  const sources = ['test/parity.cc', 'isa_generic.cc', 'pool.cc', 'cpu.cc'];
  const objects = sources.map((s) => `${output}-${s.replace(/\W/g, '_')}.o`);
  const compiled = await Promise.all(sources.map((s, i) =>
    run(compiler, [...flags, '-pthread', '-c', join(native, s), '-o', objects[i]], cwd)));
  for (const [i, r] of compiled.entries()) assert.equal(r.code, 0, `${compiler} ${sources[i]} failed:\n${r.stderr}`);
  const linked = await run(compiler, ['-pthread', ...objects, '-o', output], cwd);
  assert.equal(linked.code, 0, `${compiler}: linking failed:\n${linked.stderr}`);
}

interface Check {
  kernel: string;
  case: string;
  threads: number;
  output: string;
  type: 'f32' | 'i32' | 'f64';
  tol: number | 'exact' | 'positive';
  worst?: number;
  offset?: number;
  words: number;
  ok: boolean;
  problem?: string;
}

interface Summary {
  summary: true;
  isa: string;
  cases: number;
  checks: number;
  failures: number;
}

function parse(what: string, r: Run): { checks: Check[]; summary: Summary } {
  const { checks, summary } = harnessLines<Check, Summary>(what, r);
  const failed = checks.filter((c) => !c.ok);
  assert.deepEqual(failed.slice(0, 10).map((c) => JSON.stringify(c)), [],
    `${what}: ${failed.length} of ${checks.length} checks failed (first 10 shown)`);
  assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.stderr}`);
  return { checks, summary };
}

const label = (c: Check): string => `${c.kernel} ${c.case} threads=${c.threads} ${c.output}`;

/**
 * NEON against generic, element by element. Each build is within tol(e) = rtol (|e| + mean|e|) of the float64
 * truth e, so the two are within 2 tol(e) of each other; the generic values stand in for e (1% slack for that).
 * Exact outputs must be the same bits, integers the same values.
 */
function compareBuilds(generic: Check[], neon: Check[], genericDump: Buffer, neonDump: Buffer): number {
  const words = (dump: Buffer, c: Check) => new Uint32Array(dump.buffer, dump.byteOffset + (c.offset ?? 0) * 4, c.words);
  let worst = 0;
  for (let i = 0; i < generic.length; i++) {
    const g = generic[i];
    const n = neon[i];
    if (!g.words) continue;
    const gw = words(genericDump, g);
    const nw = words(neonDump, n);
    if (g.tol === 'exact' || g.type === 'i32') {
      const at = gw.findIndex((w, j) => w !== nw[j]);
      assert.equal(at, -1, `${label(g)}: NEON and generic differ at ${at} (exact output)`);
      continue;
    }
    const rtol = g.tol as number;
    const gv = g.type === 'f64' ? new Float64Array(gw.buffer.slice(gw.byteOffset, gw.byteOffset + gw.byteLength)) : new Float32Array(gw.buffer, gw.byteOffset, gw.length);
    const nv = n.type === 'f64' ? new Float64Array(nw.buffer.slice(nw.byteOffset, nw.byteOffset + nw.byteLength)) : new Float32Array(nw.buffer, nw.byteOffset, nw.length);
    let meanAbs = 0;
    for (const x of gv) if (Number.isFinite(x)) meanAbs += Math.abs(x);
    meanAbs /= gv.length;
    for (let j = 0; j < gv.length; j++) {
      if (!Number.isFinite(gv[j])) {
        assert.equal(nv[j], gv[j], `${label(g)}[${j}]`);
        continue;
      }
      const ratio = Math.abs(nv[j] - gv[j]) / (2.02 * rtol * (Math.abs(gv[j]) + meanAbs) + 1e-30);
      if (!(ratio <= 1)) assert.fail(`${label(g)}[${j}]: NEON ${nv[j]} vs generic ${gv[j]} (${ratio.toFixed(2)}x the tolerance)`);
      worst = Math.max(worst, ratio);
    }
  }
  return worst;
}

test('NEON kernels under qemu-aarch64 match a float64 reference and the generic x86 build', { skip, timeout: 600_000 },
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'orpo-arm64-'));
    try {
      const flags = gypFlags().common;
      const started = performance.now();
      await Promise.all([
        build('g++', flags, join(dir, 'parity-x86'), dir),
        build(CROSS, flags, join(dir, 'parity-arm64'), dir),
      ]);
      const buildSeconds = (performance.now() - started) / 1000;
      const [genericRun, neonRun] = await Promise.all([
        run(join(dir, 'parity-x86'), ['--dump', 'generic.bin'], dir),
        run(QEMU, ['-L', SYSROOT, join(dir, 'parity-arm64'), '--dump', 'neon.bin'], dir),
      ]);
      const generic = parse('generic x86-64 build', genericRun);
      const neon = parse('NEON build under qemu', neonRun);
      assert.equal(generic.summary.isa, 'generic');
      assert.equal(neon.summary.isa, 'neon', 'the aarch64 build did not compile the NEON paths');

      // the same cases, in the same order, and every kernel of the table among them
      assert.deepEqual(neon.checks.map(label), generic.checks.map(label));
      const ran = new Set(neon.checks.map((c) => c.kernel));
      const kernels = tableKernels();
      assert.ok(kernels.includes('gemm') && kernels.includes('fma_peak_gflops'), `kernels.h's table not read: ${kernels}`);
      assert.deepEqual(kernels.filter((k) => !ran.has(k)), [], 'kernels of the table the harness never ran');

      const versus = compareBuilds(generic.checks, neon.checks, readFileSync(join(dir, 'generic.bin')),
        readFileSync(join(dir, 'neon.bin')));
      const worstNeon = Math.max(...neon.checks.map((c) => c.worst ?? 0));
      t.diagnostic(`${kernels.length} kernels, ${neon.summary.cases} cases x threads 1 and 3, ${neon.summary.checks} ` +
        `output checks under qemu in ${neonRun.seconds.toFixed(1)} s (builds ${buildSeconds.toFixed(1)} s); worst NEON ` +
        `error ${worstNeon.toFixed(3)} of its tolerance, NEON vs generic ${versus.toFixed(3)} of twice it`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
