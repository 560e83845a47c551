/**
 * A small MPEG-TS reader for tests (ISO/IEC 13818-1): enough to check what a muxer wrote packet by
 * packet, independent of the muxer's own code.
 */

export interface TsPacketView {
  pid: number;
  pusi: boolean;
  cc: number;
  /** adaptation_field_control has a payload. */
  hasPayload: boolean;
  randomAccess: boolean;
  /** PCR base (90 kHz), or null. */
  pcr: number | null;
  payload: Buffer;
}

export interface PesView {
  pid: number;
  streamId: number;
  pts: number;
  dts: number;
  /** From the first TS packet of the PES. */
  randomAccess: boolean;
  pcr: number | null;
  payload: Buffer;
}

export function readPackets(buf: Buffer): TsPacketView[] {
  if (buf.length % 188 !== 0) throw new Error(`${buf.length} bytes is not a whole number of TS packets`);
  const out: TsPacketView[] = [];
  for (let o = 0; o < buf.length; o += 188) {
    const p = buf.subarray(o, o + 188);
    if (p[0] !== 0x47) throw new Error(`no sync byte at ${o}`);
    const pid = ((p[1] & 0x1f) << 8) | p[2];
    const afc = (p[3] >> 4) & 3;
    let at = 4;
    let randomAccess = false;
    let pcr: number | null = null;
    if (afc & 2) {
      const len = p[4];
      if (len > 0) {
        const flags = p[5];
        randomAccess = (flags & 0x40) !== 0;
        if (flags & 0x10) pcr = p.readUInt32BE(6) * 2 + (p[10] >> 7);
      }
      at = 5 + len;
    }
    out.push({ pid, pusi: (p[1] & 0x40) !== 0, cc: p[3] & 0xf, hasPayload: (afc & 1) !== 0, randomAccess, pcr, payload: p.subarray(at) });
  }
  return out;
}

function readTimestamp(b: Buffer, at: number): number {
  return ((b[at] >> 1) & 7) * 2 ** 30 + (b[at + 1] << 22) + ((b[at + 2] >> 1) << 15) + (b[at + 3] << 7) + (b[at + 4] >> 1);
}

/** Reassembles the PES packets of every elementary stream PID (not 0 and not the PMT). */
export function readPes(buf: Buffer, pmtPid: number): PesView[] {
  const out: PesView[] = [];
  const open = new Map<number, { first: TsPacketView; parts: Buffer[] }>();
  const close = (pid: number) => {
    const o = open.get(pid);
    if (!o) return;
    const b = Buffer.concat(o.parts);
    if (b.readUIntBE(0, 3) !== 1) throw new Error(`PES on PID ${pid} has no start code`);
    const flags = b[7];
    const hdrLen = b[8];
    const pts = readTimestamp(b, 9);
    const dts = (flags & 0xc0) === 0xc0 ? readTimestamp(b, 14) : pts;
    out.push({ pid, streamId: b[3], pts, dts, randomAccess: o.first.randomAccess, pcr: o.first.pcr, payload: b.subarray(9 + hdrLen) });
    open.delete(pid);
  };
  for (const p of readPackets(buf)) {
    if (p.pid === 0 || p.pid === pmtPid || !p.hasPayload) continue;
    if (p.pusi) {
      close(p.pid);
      open.set(p.pid, { first: p, parts: [p.payload] });
    } else {
      open.get(p.pid)?.parts.push(p.payload);
    }
  }
  for (const pid of [...open.keys()]) close(pid);
  return out;
}

/** A PSI section from a packet with pointer_field 0: table id, the whole section (CRC included). */
export function readSection(p: TsPacketView): { tableId: number; section: Buffer } {
  const ptr = p.payload[0];
  const s = p.payload.subarray(1 + ptr);
  const len = ((s[1] & 0x0f) << 8) | s[2];
  return { tableId: s[0], section: s.subarray(0, 3 + len) };
}

/** The elementary streams a PMT section lists: [stream_type, pid]; and its PCR PID. */
export function readPmt(section: Buffer): { pcrPid: number; streams: [number, number][]; version: number } {
  const pcrPid = ((section[8] & 0x1f) << 8) | section[9];
  const infoLen = ((section[10] & 0x0f) << 8) | section[11];
  const streams: [number, number][] = [];
  for (let o = 12 + infoLen; o < section.length - 4;) {
    streams.push([section[o], ((section[o + 1] & 0x1f) << 8) | section[o + 2]]);
    o += 5 + (((section[o + 3] & 0x0f) << 8) | section[o + 4]);
  }
  return { pcrPid, streams, version: (section[5] >> 1) & 0x1f };
}
