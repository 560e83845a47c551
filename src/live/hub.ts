import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { GatewayError } from '../errors.js';
import { Source, type SourceOptions } from './source.js';
import { streamKey, type Client, type StreamName } from './types.js';

export interface HubOptions {
  /** Per-vhost source options (merged-write window, GOP cache, player limit). */
  sourceOptions(vhost: string): SourceOptions;
  /** Whether a second publisher replaces the first (true) or is refused with 409 (false). */
  takeover(vhost: string): boolean;
  /** Live streams beyond this number are refused (0 = unlimited). */
  maxStreams: number;
}

/**
 * Pulls a stream from elsewhere when a player asks for one that is not published here (edge
 * mode). Resolves to the new source, or undefined when the upstream has no such stream.
 */
export type SourceResolver = (name: StreamName) => Promise<Source | undefined>;

/**
 * The registry of live sources keyed by vhost/app/stream, and of every client the API lists.
 * Events: 'publish' (source) and 'unpublish' (source) so outputs such as HLS can follow streams.
 */
export class Hub extends EventEmitter {
  private readonly sources = new Map<string, Source>();
  private readonly clientMap = new Map<string, Client>();
  private readonly idPrefix = randomBytes(2).toString('hex');
  private nextId = 1;
  /** In-flight edge pulls, so concurrent first players share one upstream request. */
  private readonly pulls = new Map<string, Promise<Source | undefined>>();
  resolver: SourceResolver | null = null;

  constructor(private readonly options: HubOptions) {
    super();
  }

  /** Short unique ids in SRS's style, for sources and clients. */
  newId(): string {
    return `${this.idPrefix}${(this.nextId++).toString(36).padStart(4, '0')}`;
  }

  /** Mounts a stream for a publisher. Throws STREAM_BUSY when it is live and takeover is off. */
  publish(name: StreamName, publisher: Client | null): Source {
    const key = streamKey(name);
    const existing = this.sources.get(key);
    if (existing && !existing.ended) {
      if (!this.options.takeover(name.vhost)) throw new GatewayError('STREAM_BUSY', key);
      existing.publisher?.kick();
      existing.end('unpublished');
    }
    if (this.options.maxStreams > 0 && this.sources.size >= this.options.maxStreams) {
      throw new GatewayError('LIMIT_REACHED', `at most ${this.options.maxStreams} streams`);
    }
    const source = new Source(name, this.newId(), publisher, this.options.sourceOptions(name.vhost));
    this.sources.set(key, source);
    source.once('end', () => {
      if (this.sources.get(key) === source) this.sources.delete(key);
      this.emit('unpublish', source);
    });
    this.emit('publish', source);
    return source;
  }

  find(name: StreamName): Source | undefined {
    return this.sources.get(streamKey(name));
  }

  /** The live source for a player: published here, or pulled through the resolver (edge). */
  async acquire(name: StreamName): Promise<Source | undefined> {
    const local = this.find(name);
    if (local) return local;
    if (!this.resolver) return undefined;
    const key = streamKey(name);
    let pull = this.pulls.get(key);
    if (!pull) {
      pull = this.resolver(name).finally(() => this.pulls.delete(key));
      this.pulls.set(key, pull);
    }
    return pull;
  }

  all(): Source[] {
    return [...this.sources.values()];
  }

  sourceById(id: string): Source | undefined {
    for (const s of this.sources.values()) if (s.id === id) return s;
    return undefined;
  }

  addClient(c: Client): void {
    this.clientMap.set(c.id, c);
  }

  removeClient(id: string): void {
    this.clientMap.delete(id);
  }

  client(id: string): Client | undefined {
    return this.clientMap.get(id);
  }

  clients(): Client[] {
    return [...this.clientMap.values()];
  }

  /** Ends every stream (shutdown): players' responses end cleanly. */
  closeAll(): void {
    for (const s of [...this.sources.values()]) {
      s.publisher?.kick();
      s.end('shutdown');
    }
  }
}
