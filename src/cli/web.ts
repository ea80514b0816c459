// `orpo web`: serves the browser build (dist/web, made by `npm run build:web`) on localhost, so that the page, which
// loads ES modules and a module worker, runs from http:// rather than file://. Static files only, no dependency.

import { readFile, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { OptionTable } from '../train/options.js';
import { resolveCommandOptions } from './args.js';

export interface WebConfig {
  port: number;
  host: string;
}

export const WEB_OPTIONS: OptionTable<WebConfig> = {
  port: { type: 'int', default: 8080, min: 0, max: 65535, doc: 'TCP port (0: any free port)' },
  host: { type: 'string', default: '127.0.0.1', doc: 'address to listen on (the default keeps the page on this machine)' },
};

const USAGE = `Usage: orpo web [--port N]

Serves the in-browser trainer (dist/web) and prints its address. Open it with ?selftest to train the built-in demo in
the page and show the result as JSON.`;

/** dist/src/cli/web.js -> dist/web */
export const WEB_ROOT = fileURLToPath(new URL('../../web/', import.meta.url));

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

/** The file under root a request path names, or null for paths outside it (`..`, encoded or not). */
function fileFor(root: string, urlPath: string): string | null {
  let path: string;
  try {
    path = decodeURIComponent(urlPath.split('?')[0]!);
  } catch {
    return null;
  }
  if (path.includes('\0')) return null;
  const file = normalize(join(root, path.endsWith('/') ? `${path}index.html` : path));
  return file.startsWith(root.endsWith(sep) ? root : `${root}${sep}`) ? file : null;
}

/** A static server of `root` on host:port; resolves once it listens. */
export async function serveStatic(root: string, host: string, port: number): Promise<Server> {
  const server = createServer((request, response) => {
    void (async () => {
      const file = request.method === 'GET' || request.method === 'HEAD' ? fileFor(root, request.url ?? '/') : null;
      const found = file !== null && (await stat(file).then((s) => s.isFile(), () => false));
      if (!found) {
        response.writeHead(file === null ? 400 : 404, { 'content-type': 'text/plain; charset=utf-8' }).end(file === null ? 'bad request\n' : 'not found\n');
        return;
      }
      const body = await readFile(file);
      response.writeHead(200, {
        'content-type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream',
        'content-length': body.length,
        // the page is rebuilt in place; a stale cached worker.js next to a new app.js would break the protocol
        'cache-control': 'no-store',
      }).end(request.method === 'HEAD' ? undefined : body);
    })().catch((error: unknown) => {
      if (!response.headersSent) response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      response.end(`${(error as Error).message}\n`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

export async function runWeb(argv: readonly string[]): Promise<number> {
  const c = await resolveCommandOptions('web', USAGE, argv, WEB_OPTIONS);
  if (c === null) return 0;
  const index = join(WEB_ROOT, 'index.html');
  if (!(await stat(index).then((s) => s.isFile(), () => false))) {
    throw new Error(`${index} not found: build the page first with \`npm run build:web\``);
  }
  const server = await serveStatic(WEB_ROOT, c.host, c.port);
  const { port } = server.address() as AddressInfo;
  const shownHost = c.host.includes(':') ? `[${c.host}]` : c.host;
  process.stdout.write(`orpo web: serving ${WEB_ROOT} at http://${shownHost}:${port}/ (open http://${shownHost}:${port}/?selftest to train the demo in the page; Ctrl-C stops)\n`);
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      server.close(() => resolve());
      server.closeAllConnections();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  return 0;
}
