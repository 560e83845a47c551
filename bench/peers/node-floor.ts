import net from 'node:net';

/**
 * The least any proxy written for Node can do per request, as a benchmark peer for the `/api/`
 * row: each client connection gets one upstream connection of its own, and bytes go across
 * verbatim in both directions, with no HTTP parsing, no routing, no header rewriting, no log.
 * It reads and writes on the sockets' libuv handles past the stream layer, as streamgate's proxy
 * lane does. Against NGINX with upstream keep-alive it says how much of streamgate's gap is its
 * own work and how much is the price Node charges per I/O event, which no JavaScript can remove.
 *
 * Not a server anyone should run: no back-pressure (the answers it relays are a few hundred
 * bytes), every path goes to the upstream.
 *
 * Usage: node node-floor.js PORT UPSTREAM_PORT
 */

interface Handle {
  onread: (ab: ArrayBuffer | undefined) => void;
  readStart(): number;
  writeBuffer(req: WriteReq, data: Buffer): number;
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
  kArrayBufferOffset: number;
}

const sw = (process as unknown as { binding(name: string): StreamWrap }).binding('stream_wrap');
const state = sw.streamBaseState;
const [port, upstream] = process.argv.slice(2).map(Number);

function write(to: Handle, data: Buffer): void {
  const req = new sw.WriteWrap();
  req.handle = to;
  req.oncomplete = () => {};
  req.async = false;
  // libuv may still read from it after the call returns: the request keeps it alive.
  req.buffer = data;
  to.writeBuffer(req, data);
}

/** Relays what `from` reads to `to`; end of stream or an error on either side closes both. */
function pipe(from: Handle, to: Handle, close: () => void): void {
  from.onread = (ab) => {
    const n = state[sw.kReadBytesOrError];
    if (n <= 0 || ab === undefined) return close();
    write(to, Buffer.from(ab, state[sw.kArrayBufferOffset], n));
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
