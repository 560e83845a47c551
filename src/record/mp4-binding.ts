import { initSegment, mediaSegment, Mp4Remuxer } from '../media/mp4/index.js';
import type { Headers } from './flv-file.js';
import { Mp4FileEncoder, type Mp4Writer } from './mp4-file.js';

/** The fMP4 writer of src/media/mp4/ in the shape Mp4FileEncoder takes. */
const WRITER: Mp4Writer = {
  initSegment: initSegment as Mp4Writer['initSegment'],
  mediaSegment: mediaSegment as Mp4Writer['mediaSegment'],
  remuxer: (v, a) => new Mp4Remuxer(v, a),
};

export function mp4Encoder(headers: Headers): Mp4FileEncoder | null {
  return Mp4FileEncoder.create(WRITER, headers);
}
