// The trainer yields to the event loop between steps with Node's setImmediate (so a Ctrl-C handler can run); a
// page has no setImmediate. This provides it where it is missing, as a MessageChannel task: unlike setTimeout(0) it
// is not clamped to 4 ms after a few nested calls, and like setImmediate it lets queued messages (a page's "pause")
// run before the next step. Imported first by the browser entry; a no-op in Node.

type Immediate = (callback: (...args: unknown[]) => void) => void;

function messageChannelImmediate(): Immediate {
  const channel = new MessageChannel();
  const queue: (() => void)[] = [];
  // typed through the DOM's MessagePort (onmessage), which the Node typings this project compiles with lack
  (channel.port1 as unknown as { onmessage: (() => void) | null }).onmessage = () => queue.shift()?.();
  return (callback) => {
    queue.push(() => callback());
    channel.port2.postMessage(null);
  };
}

const scope = globalThis as { setImmediate?: unknown };
if (typeof scope.setImmediate !== 'function') scope.setImmediate = messageChannelImmediate();
