/**
 * Player timelines, SRS's `play { time_jitter full|zero|off; }`.
 *
 * A publisher's timestamps are its own clock: 298000 ms into its session when a player joins,
 * back to 0 when it restarts, with gaps when it stalls. A player (and above all a recorder)
 * wants a timeline that starts at 0 when it joins and never jumps. SRS corrects every message
 * per player (SrsRtmpJitter); here the work is split so the fan-out stays shared:
 *
 * - the source corrects jumps once per packet (`full` only), on the publisher's side: a step
 *   between consecutive audio/video timestamps beyond ±MAX_JITTER_MS becomes JUMP_STEP_MS, so
 *   the corrected clock stays continuous (and equals the publisher's while nothing jumps);
 * - each player has an origin, the corrected time of the first packet it gets, subtracted when
 *   its bytes are made (playerDts). Players that joined at the same key frame share an origin,
 *   so one encoding of a batch still serves all of them.
 *
 * Modes: `full` (default) corrects jumps and starts each player at 0; `zero` only starts each
 * player at 0; `off` passes the publisher's timestamps through (metadata and sequence headers
 * keep theirs too), for a downstream that compares timestamps across servers.
 */
export type TimeJitter = 'full' | 'zero' | 'off';

export const TIME_JITTER_MODES: readonly TimeJitter[] = ['full', 'zero', 'off'];

/** SRS's CONST_MAX_JITTER_MS: consecutive packets further apart than this, either way, are a jump. */
export const MAX_JITTER_MS = 250;
/** SRS's DEFAULT_FRAME_TIME_MS: the step a jump is replaced by, small enough to notice. */
export const JUMP_STEP_MS = 10;

/** The source's corrected clock, on the 32-bit ring FLV and RTMP timestamps live on. */
export class JitterCorrector {
  private lastRaw = 0;
  private last = 0;
  private started = false;

  /** The corrected time of an audio/video packet stamped `raw` by the publisher. */
  correct(raw: number): number {
    if (!this.started) {
      this.started = true;
      this.lastRaw = this.last = raw >>> 0;
      return this.last;
    }
    // A signed 32-bit step: the publisher's clock wrapping at 2^32 ms is a step like any other.
    let delta = (raw - this.lastRaw) | 0;
    if (delta > MAX_JITTER_MS || delta < -MAX_JITTER_MS) delta = JUMP_STEP_MS;
    this.lastRaw = raw >>> 0;
    this.last = (this.last + delta) >>> 0;
    return this.last;
  }
}
