import assert from 'node:assert/strict';

/** A media playlist as a player reads it, with LL-HLS's tags (RFC 8216bis). */
export interface LlPlaylist {
  text: string;
  version: number;
  target: number;
  sequence: number;
  partTarget: number | null;
  partHoldBack: number | null;
  canBlock: boolean;
  map: string | null;
  segments: { uri: string; duration: number; parts: LlPart[] }[];
  /** Parts of the segment being cut, after the last EXTINF. */
  tail: LlPart[];
  hint: string | null;
  skipped: number;
}

export interface LlPart {
  uri: string;
  duration: number;
  independent: boolean;
}

const attr = (line: string, name: string): string | undefined => new RegExp(`(?:[:,])${name}=("[^"]*"|[^,]*)`).exec(line)?.[1]?.replace(/^"|"$/g, '');

export function parseLl(text: string): LlPlaylist {
  const lines = text.trim().split('\n');
  assert.equal(lines[0], '#EXTM3U');
  const tag = (name: string) => lines.find((l) => l.startsWith(`#${name}:`));
  const control = tag('EXT-X-SERVER-CONTROL') ?? '';
  const inf = tag('EXT-X-PART-INF');
  const segments: LlPlaylist['segments'] = [];
  let parts: LlPart[] = [];
  let duration = -1;
  let hint: string | null = null;
  for (const l of lines) {
    if (l.startsWith('#EXTINF:')) duration = Number(l.slice(8, l.indexOf(',')));
    else if (l.startsWith('#EXT-X-PART:')) parts.push({ uri: attr(l, 'URI')!, duration: Number(attr(l, 'DURATION')), independent: attr(l, 'INDEPENDENT') === 'YES' });
    else if (l.startsWith('#EXT-X-PRELOAD-HINT:')) hint = attr(l, 'URI')!;
    else if (!l.startsWith('#')) {
      segments.push({ uri: l, duration, parts });
      parts = [];
    }
  }
  return {
    text,
    version: Number(tag('EXT-X-VERSION')?.split(':')[1]),
    target: Number(tag('EXT-X-TARGETDURATION')?.split(':')[1]),
    sequence: Number(tag('EXT-X-MEDIA-SEQUENCE')?.split(':')[1]),
    partTarget: inf ? Number(attr(inf, 'PART-TARGET')) : null,
    partHoldBack: control ? Number(attr(control, 'PART-HOLD-BACK')) : null,
    canBlock: attr(control, 'CAN-BLOCK-RELOAD') === 'YES',
    map: tag('EXT-X-MAP') ? attr(tag('EXT-X-MAP')!, 'URI')! : null,
    segments,
    tail: parts,
    hint,
    skipped: Number(tag('EXT-X-SKIP') ? attr(tag('EXT-X-SKIP')!, 'SKIPPED-SEGMENTS') : 0),
  };
}

/**
 * Apple's LL-HLS rules that a playlist alone shows: TARGETDURATION covers every EXTINF rounded,
 * parts never exceed PART-TARGET, PART-HOLD-BACK is at least three part targets, the first part
 * of each segment is independent (segments start at key frames).
 */
export function assertAppleRules(p: LlPlaylist): void {
  for (const s of p.segments) assert.ok(Math.round(s.duration) <= p.target, `EXTINF ${s.duration} rounds above TARGETDURATION ${p.target}`);
  if (p.partTarget === null) return;
  assert.ok(p.canBlock, 'CAN-BLOCK-RELOAD=YES');
  assert.ok(p.partHoldBack !== null && p.partHoldBack >= 3 * p.partTarget - 1e-9, `PART-HOLD-BACK ${p.partHoldBack} < 3 × ${p.partTarget}`);
  for (const s of [...p.segments.map((x) => x.parts), p.tail]) {
    for (const part of s) assert.ok(part.duration <= p.partTarget, `part ${part.uri} of ${part.duration} s > PART-TARGET ${p.partTarget}`);
    if (s.length > 0 && s !== p.tail) assert.ok(s[0].independent, `first part ${s[0].uri} is INDEPENDENT`);
  }
  for (const s of p.segments) {
    if (s.parts.length === 0) continue;
    const sum = s.parts.reduce((n, x) => n + x.duration, 0);
    assert.ok(Math.abs(sum - s.duration) < 0.002 * s.parts.length + 0.001, `parts of ${s.uri} last ${sum}, EXTINF ${s.duration}`);
  }
}

/** `a-12.3.m4s` → [12, 3]. */
export function partNumbers(uri: string): [number, number] {
  const m = /-(\d+)\.(\d+)\.m4s/.exec(uri);
  assert.ok(m, uri);
  return [Number(m[1]), Number(m[2])];
}
