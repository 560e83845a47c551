import net from 'node:net';

/**
 * The least any proxy written for Node can do per request, as a benchmark peer for the `/api/`
 * row: each client connection gets one upstream connection of its own, and bytes go across
 * verbatim in both directions, with no HTTP parsing, no routing, no header rewriting, no log.
 * It reads and writes on the sockets' libuv handles past the stream layer, as streamgate's proxy
 * lane does, each socket into a buffer of its own (no allocation per read). Against NGINX with upstream keep-alive it says how much of streamgate's gap is its
 * own work and how much is the price Node charges per I/O event, which no JavaScript can remove.
 *
 * Not a server anyone should run: no back-pressure (the answers it relays are a few hundred
 * bytes), every path goes to the upstream.
 *
 * Usage: node node-floor.js PORT UPSTREAM_PORT
 */

interface Handle {
  onread: (ab: ArrayBuffer | undefined) => Buffer | undefined;
  readStart(): number;
  writeBuffer(req: WriteReq, data: Buffer): number;
  /** Reads go into this buffer from now on, not into a new allocation per read. */
  useUserBuffer(buf: Uint8Array): void;
}

interface WriteReq {
  handle: Handle;
  oncomplete: () => void;
  async: boolean;
  buffer: Buffer;
}

interface StreamWrap {
  WriteWrap: new () => WriteReq;
  streamBaseState: Int32Array;
  kReadBytesOrError: number;
  kLastWriteWasAsync: number;
}

/** Each socket reads into a buffer of its own; one a queued write still points into is replaced. */
const READ_BUFFER_BYTES = 16 * 1024;

const sw = (process as unknown as { binding(name: string): StreamWrap }).binding('stream_wrap');
const state = sw.streamBaseState;
const [port, upstream] = process.argv.slice(2).map(Number);

/** Writes `data` to `to`; true when libuv queued part of it (it still reads from `data`). */
function write(to: Handle, data: Buffer): boolean {
  const req = new sw.WriteWrap();
  req.handle = to;
  req.oncomplete = () => {};
  req.async = false;
  req.buffer = data;
  to.writeBuffer(req, data);
  return state[sw.kLastWriteWasAsync] !== 0;
}

/** Relays what `from` reads to `to`; end of stream or an error on either side closes both. */
function pipe(from: Handle, to: Handle, close: () => void): void {
  let buf = Buffer.allocUnsafe(READ_BUFFER_BYTES);
  from.useUserBuffer(buf);
  // Returning a buffer from onread is how Node's own reader hands libuv the next one.
  from.onread = () => {
    const n = state[sw.kReadBytesOrError];
    if (n <= 0) {
      close();
      return undefined;
    }
    if (!write(to, buf.subarray(0, n))) return undefined;
    buf = Buffer.allocUnsafe(READ_BUFFER_BYTES);
    return buf;
  };
}

net
  .createServer({ noDelay: true, pauseOnConnect: true }, (client) => {
    const up = net.connect({ port: upstream, host: '127.0.0.1', noDelay: true });
    const close = () => {
      client.destroy();
      up.destroy();
    };
    client.on('error', close);
    up.on('error', close);
    up.on('connect', () => {
      const c = (client as net.Socket & { _handle: Handle | null })._handle;
      const u = (up as net.Socket & { _handle: Handle | null })._handle;
      if (c === null || u === null) return close();
      pipe(c, u, close);
      pipe(u, c, close);
      c.readStart();
    });
  })
  .listen(port, '127.0.0.1', () => console.log(`node-floor listening on ${port}`));
