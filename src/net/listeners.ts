import type { Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { ListenAddr } from '../config/index.js';

export interface ListenerSpec {
  /** What it serves, for messages: "http", "https", "rtmp", "http_api". */
  role: string;
  /** The config directive that sets it, for the "what to do" part of a bind error. */
  directive: string;
  addr: ListenAddr;
  server: Server;
}

export interface Bound extends ListenerSpec {
  address: AddressInfo;
}

export class BindError extends Error {}

/**
 * Binds every listener or none: a port that fails closes the ones already bound, so a
 * half-started gateway never serves. EACCES and EADDRINUSE become one line that names the port
 * and the fix.
 */
export async function bindAll(specs: ListenerSpec[]): Promise<Bound[]> {
  const bound: Bound[] = [];
  try {
    for (const s of specs) {
      await new Promise<void>((resolve, reject) => {
        const onError = (err: NodeJS.ErrnoException) => reject(bindError(s, err));
        s.server.once('error', onError);
        s.server.listen({ port: s.addr.port, host: s.addr.host }, () => {
          s.server.off('error', onError);
          resolve();
        });
      });
      bound.push({ ...s, address: s.server.address() as AddressInfo });
    }
  } catch (err) {
    await Promise.all(bound.map((b) => new Promise((r) => b.server.close(() => r(undefined)))));
    throw err;
  }
  return bound;
}

function bindError(s: ListenerSpec, err: NodeJS.ErrnoException): BindError {
  const where = `${s.addr.host ?? '*'}:${s.addr.port}`;
  if (err.code === 'EACCES') {
    return new BindError(`cannot listen on ${where} for ${s.role}: permission denied; ports below 1024 need CAP_NET_BIND_SERVICE for this service (systemd: AmbientCapabilities=CAP_NET_BIND_SERVICE; not setcap on the node binary, which every node script shares), or set ${s.directive} to a port of 1024 or more`);
  }
  if (err.code === 'EADDRINUSE') {
    return new BindError(`cannot listen on ${where} for ${s.role}: the port is already in use; stop the other server (ss -ltnp 'sport = :${s.addr.port}') or set ${s.directive} to a free port`);
  }
  if (err.code === 'EADDRNOTAVAIL') {
    return new BindError(`cannot listen on ${where} for ${s.role}: no such local address; set ${s.directive} to an address of this machine`);
  }
  return new BindError(`cannot listen on ${where} for ${s.role}: ${err.code ?? err.message}`);
}
