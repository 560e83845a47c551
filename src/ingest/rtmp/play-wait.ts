import type { Hub } from '../../live/hub.js';
import type { Source } from '../../live/source.js';
import { streamKey, type StreamName } from '../../live/types.js';

/**
 * RTMP players of a stream nobody publishes yet, waiting for its publisher (SRS and nginx-rtmp keep
 * such a player and start it when the stream comes; rtmpdump and GStreamer's rtmp2src fail on an
 * immediate StreamNotFound). Every wait is bounded in time (the vhost's `play.wait_publisher`), and
 * the number of waiters is bounded per stream and in all, so waiting costs at most that many sockets
 * and timers. Waiters are woken by the hub's 'publish' event, never by polling.
 */

/** Players that may wait for one stream; more are refused at once (NetStream.Play.Failed). */
export const MAX_WAITING_PER_STREAM = 256;
/** Players that may wait on one listener in all. */
export const MAX_WAITING = 4096;
/**
 * What a waiting player is charged on its connection's account (and so on the anonymous pool):
 * its socket, session and timer. Measured at about 6 KiB of RSS per idle RTMP connection past the
 * handshake on Node 20; rounded up.
 */
export const WAITING_PLAYER_BYTES = 8 * 1024;

interface Waiter {
  key: string;
  timer: NodeJS.Timeout;
  onPublished: (source: Source) => void;
}

export class PlayWaitRoom {
  private readonly byStream = new Map<string, Set<Waiter>>();
  private count = 0;
  private readonly onPublish = (source: Source) => this.wake(source);

  constructor(
    private readonly hub: Hub,
    readonly maxPerStream = MAX_WAITING_PER_STREAM,
    readonly maxTotal = MAX_WAITING,
  ) {
    hub.on('publish', this.onPublish);
  }

  /** Players waiting now. */
  get size(): number {
    return this.count;
  }

  /**
   * Waits up to `ms` for `name` to be published: `onPublished` with the new source, or `onTimeout`.
   * Returns a cancel function (the player left), or null when the room is full.
   */
  wait(name: StreamName, ms: number, onPublished: (source: Source) => void, onTimeout: () => void): (() => void) | null {
    const key = streamKey(name);
    let set = this.byStream.get(key);
    if (this.count >= this.maxTotal || (set?.size ?? 0) >= this.maxPerStream) return null;
    if (!set) {
      set = new Set();
      this.byStream.set(key, set);
    }
    const w: Waiter = {
      key,
      onPublished,
      timer: setTimeout(() => {
        if (this.remove(w)) onTimeout();
      }, ms),
    };
    set.add(w);
    this.count++;
    return () => {
      if (this.remove(w)) clearTimeout(w.timer);
    };
  }

  /** Wakes every player waiting for the stream just published. */
  private wake(source: Source): void {
    const set = this.byStream.get(streamKey(source.name));
    if (!set) return;
    this.byStream.delete(streamKey(source.name));
    for (const w of set) {
      clearTimeout(w.timer);
      this.count--;
    }
    // The hub emits 'publish' from inside the publisher's start-up: players begin once it is done.
    queueMicrotask(() => {
      for (const w of set) w.onPublished(source);
    });
  }

  private remove(w: Waiter): boolean {
    const set = this.byStream.get(w.key);
    if (!set?.delete(w)) return false;
    if (set.size === 0) this.byStream.delete(w.key);
    this.count--;
    return true;
  }

  /** Stops listening to the hub and drops every timer (the listener closed). */
  close(): void {
    this.hub.off('publish', this.onPublish);
    for (const set of this.byStream.values()) for (const w of set) clearTimeout(w.timer);
    this.byStream.clear();
    this.count = 0;
  }
}
