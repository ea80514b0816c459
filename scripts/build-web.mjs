#!/usr/bin/env node
// Builds the browser version of orpo-ts into dist/web/ (npm run build:web):
//   orpo.js    the library's browser entry (src/browser.ts) as one ES module
//   app.js     the page (web/app.ts), worker.js the Web Worker that trains (web/worker.ts), index.html
//
// The browser graph must hold no Node API. Two core modules are Node-bound and are swapped for browser ones:
// the backend selection (src/backend/index.ts loads the native addon through node:module) and the data file
// readers (src/data/readers.ts reads files with node:fs). Any other node: (or bare Node builtin) import fails the
// build, naming the importer, so a regression cannot slip into the page.

import { cp, mkdir, rm } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const posix = (path) => relative(root, path).split(sep).join('/');

/** Node-bound core modules and the browser modules built in their place. */
const SWAPS = {
  'src/backend/index.ts': 'src/backend/browser.ts',
  'src/data/readers.ts': 'src/web/memory-readers.ts',
};

const NODE_BUILTIN = new RegExp(`^(node:.*|${builtinModules.map((m) => m.replace(/[/]/g, '\\/')).join('|')})(\\/.*)?$`);
const RESOLVING = Symbol('resolving');

/** @type {esbuild.Plugin} */
const browserOnly = {
  name: 'orpo-browser-only',
  setup(build) {
    build.onResolve({ filter: /^\.\.?\// }, async (args) => {
      if (args.pluginData === RESOLVING) return undefined;
      const result = await build.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, importer: args.importer, pluginData: RESOLVING });
      if (result.errors.length > 0) return { errors: result.errors };
      const swap = SWAPS[posix(result.path)];
      return { path: swap === undefined ? result.path : join(root, swap), sideEffects: result.sideEffects };
    });
    build.onResolve({ filter: NODE_BUILTIN }, (args) => {
      const importer = posix(args.importer);
      return {
        errors: [{
          text: `${importer} imports ${args.path}: the browser bundle must hold no Node API. Keep the Node-only code out of ` +
            `the core graph, or swap the module for a browser one in scripts/build-web.mjs (SWAPS)`,
        }],
      };
    });
  },
};

/**
 * Bundles the entries into outdir (emptied first) and copies the page; resolves to a one-line summary. Throws on
 * any Node import.
 */
export async function buildWeb({ outdir = join(root, 'dist', 'web'), entryPoints = { orpo: 'src/browser.ts', app: 'web/app.ts', worker: 'web/worker.ts' } } = {}) {
  await rm(outdir, { recursive: true, force: true });
  await mkdir(outdir, { recursive: true });
  const result = await esbuild.build({
    absWorkingDir: root,
    entryPoints,
    outdir,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    sourcemap: true,
    metafile: true,
    logLevel: 'silent',
    plugins: [browserOnly],
  });
  const inputs = Object.keys(result.metafile.inputs);
  for (const swapped of Object.keys(SWAPS)) {
    if (inputs.includes(swapped)) throw new Error(`build-web: ${swapped} reached the bundle although it is swapped out`);
  }
  await cp(join(root, 'web', 'index.html'), join(outdir, 'index.html'));
  const sizes = Object.entries(result.metafile.outputs).filter(([file]) => file.endsWith('.js'))
    .map(([file, out]) => `${file.split('/').pop()} ${(out.bytes / 1024).toFixed(0)} KiB`);
  return `build-web: ${posix(outdir)}/ (${sizes.join(', ')}; ${inputs.length} modules, no Node API)`;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    process.stdout.write(`${await buildWeb(process.argv[2] === undefined ? {} : { outdir: process.argv[2] })}\n`);
  } catch (error) {
    process.stderr.write(`${error.message}\n`);
    process.exitCode = 1;
  }
}
