import { EventEmitter } from 'node:events';
import { earliestDts, PASS_THROUGH, type MediaPacket } from '../media/packet.js';
import { Consumer, type Burst, type ConsumerLimits } from './consumer.js';
import { JitterCorrector, type TimeJitter } from './timeline.js';
import { RateMeter } from './rate.js';
import { makeBatch, type Client, type EndReason, type Sink, type StreamName } from './types.js';

export interface SourceOptions {
  /** Merged-write window (SRS's `mw_latency`): packets are handed to players this often. 0 = next tick. */
  mwLatencyMs: number;
  /** The GOP cache stops growing past this and restarts at the next key frame. */
  gopCacheMaxBytes: number;
  /** Players beyond this number are refused (0 = unlimited). */
  maxPlayers: number;
  /** SRS's play.time_jitter: how each player's timeline is made (see timeline.ts). */
  timeJitter: TimeJitter;
  consumer: ConsumerLimits;
}

export const DEFAULT_SOURCE_OPTIONS: SourceOptions = {
  mwLatencyMs: 350,
  gopCacheMaxBytes: 16 * 1024 * 1024,
  maxPlayers: 0,
  timeJitter: 'full',
  consumer: { maxBacklogBytes: 4 * 1024 * 1024, stallTimeoutMs: 20_000 },
};

/**
 * One live stream: what its publisher sent last (metadata, sequence headers, the GOP since the
 * last key frame) and the players watching it. Events: 'end' (reason) once the publisher is gone,
 * 'idle' when the last player leaves.
 */
export class Source extends EventEmitter {
  readonly createdAt = Date.now();
  metadata: MediaPacket | null = null;
  videoHeader: MediaPacket | null = null;
  audioHeader: MediaPacket | null = null;
  /** The first audio frame: what the API reads a codec without a sequence header (MP3) from. */
  audioSample: MediaPacket | null = null;
  /** Codec ids of the tracks seen so far (0 = none). */
  videoCodec = 0;
  audioCodec = 0;
  /** Tracks the publisher announced up front (FLV header flags), before any packet arrived. */
  declared = { audio: false, video: false };
  frames = 0;
  /** The newest audio/video timestamp pushed (ms), -1 before any. */
  lastDts = -1;
  readonly recv = new RateMeter();
  readonly send = new RateMeter();
  ended = false;

  private gop: MediaPacket[] = [];
  private gopBytes = 0;
  private gopActive = false;
  private readonly lanes: Lane[];
  private joinBurst: Burst | null = null;
  /** Corrects the publisher's jumps once for every player (time_jitter full). */
  private readonly corrector: JitterCorrector | null;
  private readonly consumers = new Set<Consumer>();
  /** Consumers that are not players (the HLS segmenter): no seat, no say in 'idle'. */
  private readonly internal = new Set<Consumer>();

  constructor(
    readonly name: StreamName,
    readonly id: string,
    public publisher: Client | null,
    private readonly options: SourceOptions,
  ) {
    super();
    this.corrector = options.timeJitter === 'full' ? new JitterCorrector() : null;
    const n = options.mwLatencyMs > 0 ? LANES : 1;
    this.lanes = Array.from({ length: n }, (_, i) => ({ pending: [], timer: null, members: new Set(), phase: (i * options.mwLatencyMs) / n }));
  }

  get key(): string {
    return `${this.name.vhost}/${this.name.app}/${this.name.stream}`;
  }

  get hasVideo(): boolean {
    return this.videoCodec !== 0 || this.declared.video;
  }

  get hasAudio(): boolean {
    return this.audioCodec !== 0 || this.declared.audio;
  }

  get playerCount(): number {
    return this.consumers.size - this.internal.size;
  }

  players(): Iterable<Consumer> {
    return this.consumers;
  }

  push(pkt: MediaPacket): void {
    if (this.ended) return;
    this.recv.add(pkt.data.length + 15);
    this.joinBurst = null;
    if (pkt.kind !== 'script') {
      if (this.corrector) pkt.dts = this.corrector.correct(pkt.dts);
      this.lastDts = pkt.dts;
    }
    if (pkt.kind === 'script') {
      this.metadata = pkt;
    } else if (pkt.kind === 'video') {
      this.videoCodec = pkt.codec;
      if (pkt.header) {
        this.videoHeader = pkt;
      } else {
        this.frames++;
        if (pkt.keyframe) this.restartGop();
        this.cache(pkt);
      }
    } else {
      this.audioCodec = pkt.codec;
      if (pkt.header) this.audioHeader = pkt;
      else {
        this.audioSample ??= pkt;
        this.cache(pkt);
      }
    }
    for (const lane of this.lanes) {
      if (lane.members.size === 0) continue;
      lane.pending.push(pkt);
      this.schedule(lane);
    }
  }

  /**
   * Seats a player: it gets the join burst now and every batch after it. An `internal` sink (a
   * segmenter in this process) takes no player seat and does not keep an edge pull alive.
   */
  subscribe(sink: Sink, client: Client | null, internal = false): Consumer {
    const c = new Consumer(sink, client, this.options.consumer, (x) => this.leave(x), () => this.hasVideo, this.options.timeJitter !== 'off');
    this.consumers.add(c);
    if (internal) this.internal.add(c);
    let lane = this.lanes[0];
    for (const l of this.lanes) if (l.members.size < lane.members.size) lane = l;
    lane.members.add(c);
    // Pending packets newer than the last key frame are in the burst already; older ones predate it.
    c.skip = lane.pending.length;
    const haveGop = this.gopActive || !this.hasVideo;
    c.join(this.burst(), haveGop);
    return c;
  }

  /** Whether a new player may join under the configured limit. */
  canAcceptPlayer(): boolean {
    return this.options.maxPlayers <= 0 || this.playerCount < this.options.maxPlayers;
  }

  /** The publisher is gone: hand out what is pending, then end every player. */
  end(reason: EndReason = 'unpublished'): void {
    if (this.ended) return;
    for (const lane of this.lanes) {
      this.flush(lane);
      clearTimer(lane);
    }
    this.ended = true;
    for (const c of [...this.consumers]) c.end(reason);
    this.gop = [];
    this.emit('end', reason);
  }

  /**
   * What a joining player gets first: metadata, sequence headers, the GOP. Everyone who joins
   * before the next packet shares it, and so its encodings. On a timeline (time_jitter full or
   * zero) the player's 0 is the GOP's earliest frame and the stored headers are copies stamped
   * there, so a player never sees them at the publisher's time (ts 0 ahead of frames at 298000
   * made recorders write files hundreds of seconds long); metadata goes out at 0 (playerDts).
   */
  private burst(): Burst {
    if (this.joinBurst) return this.joinBurst;
    const timeline = this.options.timeJitter !== 'off';
    const gop = this.gopActive ? this.gop : [];
    const origin = !timeline ? PASS_THROUGH : gop.length > 0 ? earliestDts(gop) : 0;
    const at = (p: MediaPacket): MediaPacket => (timeline ? { ...p, dts: origin } : p);
    const packets: MediaPacket[] = [];
    if (this.metadata) packets.push(this.metadata);
    if (this.videoHeader) packets.push(at(this.videoHeader));
    if (this.audioHeader) packets.push(at(this.audioHeader));
    for (const p of gop) packets.push(p);
    this.joinBurst = { ...makeBatch(packets), origin, media: gop.length > 0 };
    return this.joinBurst;
  }

  private restartGop(): void {
    this.gop = [];
    this.gopBytes = 0;
    this.gopActive = true;
  }

  private cache(pkt: MediaPacket): void {
    if (!this.gopActive) return;
    this.gopBytes += pkt.data.length;
    if (this.gopBytes > this.options.gopCacheMaxBytes) {
      // A GOP this large (or a stream with no key frames) would pin memory: stop caching until
      // the next key frame; joining players then wait for it instead of getting a burst.
      this.gop = [];
      this.gopBytes = 0;
      this.gopActive = false;
      return;
    }
    this.gop.push(pkt);
  }

  /**
   * A lane flushes on its own grid point of the window, so a packet waits less than one window
   * whichever lane it is in, and the lanes' flushes fall at different times.
   */
  private schedule(lane: Lane): void {
    if (lane.timer) return;
    const w = this.options.mwLatencyMs;
    if (w <= 0) {
      lane.timer = setImmediate(() => this.flush(lane));
      return;
    }
    const into = (((Date.now() - this.createdAt - lane.phase) % w) + w) % w;
    lane.timer = setTimeout(() => this.flush(lane), w - into);
  }

  private flush(lane: Lane): void {
    lane.timer = null;
    if (lane.pending.length === 0) return;
    const batch = makeBatch(lane.pending);
    lane.pending = [];
    const now = Date.now();
    for (const c of lane.members) c.deliver(batch, now);
  }

  private leave(c: Consumer): void {
    this.consumers.delete(c);
    for (const lane of this.lanes) {
      if (!lane.members.delete(c)) continue;
      if (lane.members.size === 0) {
        clearTimer(lane);
        lane.pending = [];
      }
      break;
    }
    if (this.internal.delete(c)) return;
    if (this.playerCount === 0 && !this.ended) this.emit('idle');
  }
}

/**
 * Players are dealt into lanes, each with its own merged-write timer at a staggered phase of the
 * window. One timer for all players wrote the whole batch to every socket in one go: at 1,000
 * players the last socket got its bytes tens of milliseconds after the first, on top of the
 * window (SRS staggers the same way, each consumer waiting on its own).
 */
const LANES = 8;

interface Lane {
  pending: MediaPacket[];
  timer: NodeJS.Timeout | NodeJS.Immediate | null;
  members: Set<Consumer>;
  /** Offset of this lane's flushes within the window (ms). */
  phase: number;
}

function clearTimer(lane: Lane): void {
  if (!lane.timer) return;
  clearTimeout(lane.timer as NodeJS.Timeout);
  clearImmediate(lane.timer as NodeJS.Immediate);
  lane.timer = null;
}
