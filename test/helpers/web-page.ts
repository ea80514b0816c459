// What the browser tests of the page share (test/web-page.test.ts, test/web-lora.test.ts): the page bundled fresh,
// `orpo web` serving it, and Debian's Chromium driven headless by playwright-core.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url)); // dist/test/helpers/ -> the package root
export const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];

/** false when Chromium is here, else why a browser test skips */
export const NO_CHROMIUM: false | string = existsSync(CHROMIUM) ? false : `${CHROMIUM} is absent (apt-get install chromium); this test needs a real browser`;

/** npm test compiles TypeScript only; the page is bundled here (about a second) so that it is never stale. */
export async function buildWebPage(): Promise<void> {
  const { buildWeb } = await import(pathToFileURL(join(ROOT, 'scripts', 'build-web.mjs')).href) as { buildWeb: () => Promise<string> };
  await buildWeb();
}

/** `orpo web --port 0`, resolved with the address it prints. */
export async function startServer(): Promise<{ url: string; server: ChildProcess }> {
  const server = spawn(process.execPath, [join(ROOT, 'dist', 'src', 'cli', 'main.js'), 'web', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const url = await new Promise<string>((resolve, reject) => {
    server.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /http:\/\/127\.0\.0\.1:\d+\//.exec(output);
      if (match !== null) resolve(match[0]);
    });
    server.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    server.once('exit', (code) => reject(new Error(`orpo web exited with ${code}: ${output}`)));
  });
  return { url, server };
}

export async function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
}

/** A page that accepts downloads, with its errors (uncaught, and console.error) collected into the returned list. */
export async function newPage(browser: Browser): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage({ acceptDownloads: true });
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  return { page, errors };
}

/** Clicks a download button and saves what the page hands over under dir; resolves to the saved file. */
export async function downloadFrom(page: Page, selector: string, dir: string): Promise<string> {
  const [download] = await Promise.all([page.waitForEvent('download'), page.click(selector)]);
  const file = join(dir, download.suggestedFilename());
  await download.saveAs(file);
  return file;
}
