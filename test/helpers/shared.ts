// Locating ../shared (the team's fixtures and data) from compiled tests in dist/test/.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join, resolve } from 'node:path';

/** repository root (dist/test/helpers/ -> ../../..) */
export const repoRoot = resolve(fileURLToPath(new URL('../../..', import.meta.url)));

/** ../shared next to the repository, or null when this checkout has none */
export function sharedDir(): string | null {
  const dir = process.env.ORPO_SHARED_DIR ?? join(repoRoot, '..', 'shared');
  return existsSync(join(dir, 'fixtures')) ? dir : null;
}

export const SHARED_MISSING = 'skipped: ../shared (the team fixtures) is not present next to this checkout';

/** the subset of the golden fixtures kept in the repository (test/fixtures/golden/README.md) */
const repoGolden = join(repoRoot, 'test', 'fixtures', 'golden');

/**
 * A golden fixture file or folder (path under fixtures/): from ../shared when it is there (the full set), else from
 * the repository's subset, else null (the caller skips, saying so with `goldenMissing`).
 */
export function golden(...parts: string[]): string | null {
  const shared = sharedDir();
  const root = shared === null ? repoGolden : join(shared, 'fixtures');
  const path = join(root, ...parts);
  return existsSync(path) ? path : null;
}

export const goldenMissing = (what: string): string =>
  `skipped: ${what} is not in the repository's subset of the golden fixtures (test/fixtures/golden); it needs ../shared`;
