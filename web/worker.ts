/// <reference lib="dom" />
// The page's Web Worker: holds the session (model, tokenizer, data, training run) so that training never blocks
// the page. Each request message becomes one BrowserSession call; its result (or error) is the reply. The worker
// also looks for WebGPU (a worker has its own navigator.gpu): with an adapter, training runs there unless the page
// asks for the TypeScript backend.
import { BROWSER_BACKEND_NOTE, BrowserSession, jsKernels, PAGE_LORA_DEFAULTS, probeWebGpu, type WebGpuAvailability } from '../src/browser.js';
import { BYTE_REPLIES, type BackendsReply, type ModelReply, type Op, type RequestMessage, type Requests, type WorkerMessage } from './protocol.js';

const session = new BrowserSession();
// a worker's global scope, typed by what this file uses of it (the project compiles web/ with the DOM library)
const scope = self as unknown as { onmessage: ((e: MessageEvent<RequestMessage>) => void) | null; postMessage(m: WorkerMessage, transfer?: Transferable[]): void };

// looked for once: the page asks at start and again for the self-test, and every run needs the answer
let webGpu: Promise<WebGpuAvailability> | null = null;
const findWebGpu = (): Promise<WebGpuAvailability> => (webGpu ??= probeWebGpu((self.navigator as { gpu?: GPU }).gpu));

async function backends(): Promise<BackendsReply> {
  const found = await findWebGpu();
  return {
    js: { name: jsKernels.name, note: BROWSER_BACKEND_NOTE },
    webgpu: found.available ? { available: true, name: found.backend.name, adapter: found.adapter, isSoftware: found.isSoftware }
      : { available: false, reason: found.reason },
  };
}

const modelReply = (): ModelReply => ({ description: session.describeModel(), loraTargets: session.loraTargets() });

type Handlers = { [K in Op]: (args: Requests[K]['args']) => Promise<Requests[K]['reply']> | Requests[K]['reply'] };

const handlers: Handlers = {
  hello: async () => ({ ...(await backends()), lora: PAGE_LORA_DEFAULTS }),
  demoModel: ({ size, seed }) => {
    session.loadDemoModel(size, seed);
    return modelReply();
  },
  folderModel: ({ name, files }) => {
    session.loadModelFolder(new Map(files.map(([file, bytes]) => [file, new Uint8Array(bytes)])), name);
    return modelReply();
  },
  demoData: ({ seed, trainPairs, evalPairs, choices }) => session.useDemoData(seed, trainPairs, evalPairs, choices),
  dataFile: ({ role, name, bytes, choices }) => session.setDataFile(role, name, new Uint8Array(bytes), choices),
  dataSummary: ({ file, choices }) => session.summarizeData(file, choices),
  train: async ({ choices, backend }) => {
    const found = await findWebGpu();
    session.trainingBackend = backend === 'auto' && found.available ? found.backend : null;
    return session.train(choices, {
    log: (record) => scope.postMessage({ event: 'log', record }),
      progress: (progress) => scope.postMessage({ event: 'progress', progress }),
    });
  },
  pause: () => {
    session.pause();
    return null;
  },
  generate: ({ prompt, maxNewTokens, chat }) => ({ text: session.generate(prompt, { maxNewTokens, chat }) }),
  logits: ({ prompt }) => session.promptLogits(prompt),
  zip: ({ folder, dtype, what }) => {
    const bytes = what === 'adapter' ? session.adapterZip(folder, { dtype }) : session.modelZip(folder, { dtype });
    return { bytes: bytes.buffer as ArrayBuffer };
  },
  gguf: async ({ name, dtype }) => ({ bytes: (await session.gguf(name, { dtype })).buffer as ArrayBuffer }),
};

scope.onmessage = (e) => {
  const { id, op, args } = e.data;
  const handler = handlers[op] as (a: typeof args) => unknown;
  Promise.resolve()
    .then(() => handler(args))
    .then((value) => {
      const transfer = BYTE_REPLIES.includes(op) ? [(value as { bytes: ArrayBuffer }).bytes] : [];
      scope.postMessage({ id, ok: true, value }, transfer);
    })
    .catch((error: unknown) => scope.postMessage({ id, ok: false, error: error instanceof Error ? error.message : String(error) }));
};
