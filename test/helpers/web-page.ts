// What the browser tests of the page share (web-page, web-lora, web-webgpu .test.ts): the page bundled fresh,
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

/**
 * WebGPU in headless Chromium with no GPU: Chromium on Linux offers WebGPU only behind --enable-unsafe-webgpu, and
 * --use-webgpu-adapter=swiftshader picks the SwiftShader Vulkan (a CPU implementation) that Debian's package ships
 * in /usr/lib/chromium, even where a GPU would be found. Found by trying (Chromium 150, in the page and in a
 * worker): --enable-unsafe-webgpu alone already gives the "google / swiftshader" adapter here, with or without
 * CHROMIUM_ARGS' --disable-gpu (five launches out of five); --enable-features=Vulkan, --use-angle=swiftshader and
 * --disable-vulkan-surface are not needed, and --use-angle=vulkan with --enable-features=Vulkan made it flaky (now
 * no adapter, now requestDevice refused: "A valid external Instance reference no longer exists").
 * Without the flags requestAdapter() returns null ("No available adapters."). WebGPU also needs a secure context:
 * the test server's http://127.0.0.1 is one, about:blank is not (navigator.gpu is undefined there).
 */
export const WEBGPU_ARGS = ['--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader'];
const SWIFTSHADER = '/usr/lib/chromium/libvk_swiftshader.so';
/** false when Chromium and its SwiftShader are here, else why a WebGPU browser test skips */
export const NO_WEBGPU_CHROMIUM: false | string = NO_CHROMIUM !== false ? NO_CHROMIUM
  : existsSync(SWIFTSHADER) ? false : `${SWIFTSHADER} is absent: this Chromium build brings no SwiftShader for WebGPU without a GPU`;

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

/** Headless Chromium; `webgpu`: with WebGPU on SwiftShader (WEBGPU_ARGS), else as a browser without an adapter. */
export async function launchChromium(opts: { webgpu?: boolean } = {}): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_ARGS, ...(opts.webgpu === true ? WEBGPU_ARGS : [])], headless: true });
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
