import type { Hub } from './hub.js';
import type { Client, StreamName } from './types.js';

export interface ClientInit {
  type: string;
  ip: string;
  name: StreamName;
  url: string;
  tcUrl?: string;
  pageUrl?: string;
  publish: boolean;
  kick: () => void;
  /**
   * The id the access chain gave this client (its hooks' client_id): the API lists and kicks it
   * by the same id, as SRS does. A new one when absent or already taken (an RTMP connection that
   * publishes and plays is one hook client, two API clients).
   */
  id?: string;
}

/** A Client whose byte counts the connection code bumps as it reads and writes. */
export class CountingClient implements Client {
  readonly id: string;
  readonly since = Date.now();
  sent = 0;
  received = 0;
  readonly type: string;
  readonly ip: string;
  readonly vhost: string;
  readonly app: string;
  readonly stream: string;
  readonly url: string;
  readonly tcUrl: string;
  readonly pageUrl: string;
  readonly publish: boolean;
  private readonly onKick: () => void;

  constructor(hub: Hub, init: ClientInit) {
    this.id = init.id !== undefined && init.id !== '' && hub.client(init.id) === undefined ? init.id : hub.newId();
    this.type = init.type;
    this.ip = init.ip;
    this.vhost = init.name.vhost;
    this.app = init.name.app;
    this.stream = init.name.stream;
    this.url = init.url;
    this.tcUrl = init.tcUrl ?? '';
    this.pageUrl = init.pageUrl ?? '';
    this.publish = init.publish;
    this.onKick = init.kick;
  }

  sendBytes(): number {
    return this.sent;
  }

  recvBytes(): number {
    return this.received;
  }

  kick(): void {
    this.onKick();
  }
}
