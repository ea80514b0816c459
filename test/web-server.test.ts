// `orpo web`'s static server: serves the build's files with their content types and nothing outside its folder.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { serveStatic } from '../src/cli/web.js';

/** GET of a raw path (no URL normalisation on the client side, so '..' reaches the server as written). */
function get(port: number, path: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, type: String(res.headers['content-type']), body }));
    }).on('error', reject).end();
  });
}

test('orpo web serves its folder with content types and refuses paths outside it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'orpo-web-server-'));
  await mkdir(join(dir, 'site'));
  await writeFile(join(dir, 'site', 'index.html'), '<p>page</p>');
  await writeFile(join(dir, 'site', 'app.js'), 'export {};');
  await writeFile(join(dir, 'secret.txt'), 'outside');
  const server = await serveStatic(join(dir, 'site'), '127.0.0.1', 0);
  try {
    const { port } = server.address() as AddressInfo;
    assert.deepEqual(await get(port, '/?selftest'), { status: 200, type: 'text/html; charset=utf-8', body: '<p>page</p>' });
    assert.equal((await get(port, '/app.js')).type, 'text/javascript; charset=utf-8');
    assert.equal((await get(port, '/missing.js')).status, 404);
    for (const path of ['/../secret.txt', '/%2e%2e/secret.txt', '/..%2fsecret.txt', '/%00']) {
      const r = await get(port, path);
      assert.ok(r.status === 400 || r.status === 404, `${path}: ${r.status}`);
      assert.notEqual(r.body, 'outside', path);
    }
  } finally {
    server.close();
    await rm(dir, { recursive: true, force: true });
  }
});
