// What the golden-fixture tests share: the backends to run them on, and the relative-error check.
import assert from 'node:assert/strict';
import { availableBackends, getKernels } from '../../src/backend/index.js';
import { jsKernels } from '../../src/backend/js/kernels.js';
import type { Kernels } from '../../src/backend/kernels.js';

/** the TypeScript reference, and the native backend when it is built */
export function fixtureBackends(): Kernels[] {
  const list: Kernels[] = [jsKernels];
  if (availableBackends().includes('native')) {
    const k = getKernels();
    if (k.name !== 'js') list.push(k);
  }
  return list;
}

export function assertRel(actual: number, expected: number, rel: number, what: string): void {
  const err = Math.abs(actual - expected) / Math.max(Math.abs(expected), 1e-12);
  assert.ok(err <= rel, `${what}: got ${actual}, expected ${expected} (relative error ${err.toExponential(2)} > ${rel})`);
}
