import type { Socket } from 'node:net';
import { FrameReader, MIN_MAX_FRAME_SIZE, PREFACE, type FrameHandler } from './frames.js';
import { TURN_WORK } from './calm.js';

/** The socket is not read: its output waits to drain. */
const BACKLOG = 1;
/** The socket is not read: frames of the last read wait for the next turn. */
const HELD = 2;

/**
 * Reading a client's connection: the preface (§3.4), then frames, at most TURN_WORK of them a
 * turn. When a read holds more, the socket stops being read and the rest is handled on the next
 * turn, after every other connection's reads (setImmediate runs after the poll), as a fair
 * scheduler would. The socket is also not read while its output backlog is over the bound.
 */
export class ClientReads {
  private preface: Buffer | null = Buffer.alloc(0);
  private readonly frames: FrameReader;
  /** Why the socket is not read: BACKLOG, HELD or both. */
  private pausedFor = 0;
  private turn: NodeJS.Immediate | null = null;
  private stopped = false;

  constructor(
    private readonly sock: Socket,
    onFrame: FrameHandler,
    onOversize: (len: number) => void,
    private readonly onBadPreface: () => void,
    /** Frames of a held read were handled on a later turn: their output is due. */
    private readonly afterTurn: () => void,
  ) {
    this.frames = new FrameReader(MIN_MAX_FRAME_SIZE, onFrame, onOversize, TURN_WORK);
  }

  /** Frames of the last read wait for a later turn. */
  get held(): boolean {
    return this.frames.held;
  }

  push(chunk: Buffer): void {
    if (this.stopped) return;
    if (this.preface !== null) {
      const got = this.preface.length === 0 ? chunk : Buffer.concat([this.preface, chunk]);
      const n = Math.min(got.length, PREFACE.length);
      if (got.compare(PREFACE, 0, n, 0, n) !== 0) return this.onBadPreface();
      if (got.length < PREFACE.length) {
        this.preface = got;
        return;
      }
      this.preface = null;
      chunk = got.subarray(PREFACE.length);
      if (chunk.length === 0) return;
    }
    this.frames.push(chunk);
  }

  /** After a read's output is flushed: a read that spent its turn goes on at the next. */
  holdIfSpent(): void {
    if (!this.frames.held || this.stopped || this.turn !== null) return;
    this.pause(HELD);
    this.turn = setImmediate(() => {
      this.turn = null;
      if (this.stopped) return;
      this.frames.resume();
      this.afterTurn();
      if (this.frames.held) this.holdIfSpent();
      else this.unpause(HELD);
    });
  }

  /**
   * The peer sent its FIN (announced even while the socket is paused): frames held for later
   * turns are handled now, before the connection acts on the end.
   */
  finish(): void {
    while (this.frames.held && !this.stopped) this.frames.resume();
  }

  /** The output backlog is over its bound (true) or has drained (false). */
  backlog(over: boolean): void {
    if (over) this.pause(BACKLOG);
    else this.unpause(BACKLOG);
  }

  get backlogged(): boolean {
    return (this.pausedFor & BACKLOG) !== 0;
  }

  /** Nothing more is read: the connection failed or is gone. */
  stop(): void {
    this.stopped = true;
    this.frames.stopped = true;
    if (this.turn !== null) clearImmediate(this.turn);
    this.turn = null;
  }

  private pause(why: number): void {
    if (this.pausedFor === 0) this.sock.pause();
    this.pausedFor |= why;
  }

  private unpause(why: number): void {
    if (this.pausedFor === 0) return;
    this.pausedFor &= ~why;
    if (this.pausedFor === 0 && !this.stopped) this.sock.resume();
  }
}
