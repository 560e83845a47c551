import type { Fmp4HlsStream, Fmp4Segment, InitSection } from './hls-fmp4.js';

/**
 * The media playlist of an fMP4 stream (RFC 8216bis): EXT-X-MAP before the first segment and
 * wherever the init segment changes, and for LL-HLS the parts of recent segments (§4.4.4.9), the
 * server's blocking-reload and skip abilities (§4.4.3.8) and a preload hint for the part being cut
 * (§4.4.5.3). `skip` renders the delta update a `_HLS_skip=YES` reload asks for (§6.2.5.1).
 */

/** Version 7: EXT-X-MAP in a playlist without I-frames only (§7); 9: EXT-X-SKIP (delta updates). */
const FMP4_VERSION = 7;
const LL_VERSION = 9;
/**
 * PART-HOLD-BACK: the player stays this many part targets behind the live edge; at least 3
 * (§4.4.3.8), and Apple's rule too. hls.js aims its live edge here in lowLatencyMode.
 */
export const PART_HOLD_BACK_TARGETS = 3;
/** CAN-SKIP-UNTIL: at least six target durations (§4.4.3.8). */
const SKIP_UNTIL_TARGETS = 6;

export function targetDuration(s: Fmp4HlsStream): number {
  // Covers every EXTINF rounded (RFC 8216 §4.3.3.1) and only grows.
  return Math.max(1, Math.ceil(s.maxDurationS), Math.ceil(s.limits.fragmentS));
}

export function renderFmp4Playlist(s: Fmp4HlsStream, skip: boolean): string {
  const target = targetDuration(s);
  const segs = s.window();
  const first = segs[0];
  const ll = s.ll;
  let out = `#EXTM3U\n#EXT-X-VERSION:${ll ? LL_VERSION : FMP4_VERSION}\n#EXT-X-TARGETDURATION:${target}\n`;
  const skipUntil = SKIP_UNTIL_TARGETS * target;
  if (ll) {
    const hold = PART_HOLD_BACK_TARGETS * s.limits.partS;
    out += `#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=${skipUntil.toFixed(1)},PART-HOLD-BACK=${hold.toFixed(3)}\n`;
    out += `#EXT-X-PART-INF:PART-TARGET=${s.limits.partS.toFixed(3)}\n`;
  }
  out += `#EXT-X-MEDIA-SEQUENCE:${first ? first.seq : s.nextSequence}\n`;
  if (s.discontinuitySeq > 0) out += `#EXT-X-DISCONTINUITY-SEQUENCE:${s.discontinuitySeq}\n`;
  let from = 0;
  if (ll && skip) {
    // Segments that start more than CAN-SKIP-UNTIL before the end may be skipped (§6.2.5.1).
    let fromEnd = 0;
    for (const x of segs) fromEnd += x.durationS;
    while (from < segs.length - 1 && fromEnd - segs[from].durationS >= skipUntil) fromEnd -= segs[from++].durationS;
    if (from > 0) out += `#EXT-X-SKIP:SKIPPED-SEGMENTS=${from}\n`;
  }
  let map: InitSection | null = null;
  for (let i = from; i < segs.length; i++) {
    const seg = segs[i];
    if (seg.discontinuity && i > 0) out += '#EXT-X-DISCONTINUITY\n';
    if (seg.init !== map) {
      map = seg.init;
      out += `#EXT-X-MAP:URI="${s.initUri(map)}"\n`;
    }
    out += segmentLines(s, seg);
  }
  const b = s.building();
  if (ll && b && !s.ended) {
    if (b.parts.length > 0 || s.growing) {
      if (b.discontinuity && segs.length > 0) out += '#EXT-X-DISCONTINUITY\n';
      if (b.init !== map) out += `#EXT-X-MAP:URI="${s.initUri(b.init)}"\n`;
      out += dateLine(b.wallMs);
    }
    for (const p of b.parts) out += partLine(s, p.seq, p.index, p.durationS, p.independent);
    const g = s.growing;
    if (g) out += `#EXT-X-PRELOAD-HINT:TYPE=PART,URI="${s.partUri(g.seq, g.index)}"\n`;
  }
  if (s.ended) out += '#EXT-X-ENDLIST\n';
  return out;
}

/** EXT-X-PROGRAM-DATE-TIME (§4.4.4.6) on every segment: players (hls.js playingDate) read the latency off it. */
function dateLine(wallMs: number): string {
  return `#EXT-X-PROGRAM-DATE-TIME:${new Date(wallMs).toISOString()}\n`;
}

function segmentLines(s: Fmp4HlsStream, seg: Fmp4Segment): string {
  let out = dateLine(seg.wallMs);
  for (const p of seg.parts) out += partLine(s, p.seq, p.index, p.durationS, p.independent);
  return `${out}#EXTINF:${seg.durationS.toFixed(3)},\n${s.uri(seg.seq)}\n`;
}

function partLine(s: Fmp4HlsStream, seq: number, index: number, durationS: number, independent: boolean): string {
  return `#EXT-X-PART:DURATION=${durationS.toFixed(3)},URI="${s.partUri(seq, index)}"${independent ? ',INDEPENDENT=YES' : ''}\n`;
}
