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
