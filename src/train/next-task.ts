// The trainer yields to the event loop between optimizer steps, so that a Ctrl-C handler (Node) or a "pause"
// message (a page's training worker) runs before the next step. Node has setImmediate for that; a browser has not,
// and setTimeout(0) is clamped to 4 ms after a few nested calls there (800 steps would wait 3 s for nothing), so
// elsewhere it is a MessageChannel task, which is not clamped and lets queued messages run first.

type Resolve = () => void;

function messageChannelTask(): () => Promise<void> {
  const channel = new MessageChannel();
  const waiting: Resolve[] = [];
  // typed through the DOM's MessagePort (onmessage), which the Node typings this project compiles with lack
  (channel.port1 as unknown as { onmessage: (() => void) | null }).onmessage = () => waiting.shift()?.();
  return () => new Promise<void>((resolve) => {
    waiting.push(resolve);
    channel.port2.postMessage(null);
  });
}

const scope = globalThis as { setImmediate?: (callback: () => void) => unknown };

/** resolves once the event loop has run what is queued (timers aside) */
export const nextTask: () => Promise<void> = typeof scope.setImmediate === 'function'
  ? () => new Promise<void>((resolve) => scope.setImmediate!(resolve))
  : messageChannelTask();
