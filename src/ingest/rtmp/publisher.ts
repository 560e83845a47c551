import { GatewayError } from '../../errors.js';
import type { StreamName } from '../../live/types.js';
import type { Grant } from '../../auth/policy.js';
import { packetFromTag, TAG_SCRIPT } from '../../media/packet.js';
import { startPublication, type Publication } from '../publish.js';
import { decodeAmf0, decodeAmf0All, EcmaArray } from './amf0.js';
import type { RtmpMessage } from './chunk.js';
import { isObject, type RtmpConn } from './conn.js';

/**
 * The publish side of an RTMP connection: authorise, take the stream in the hub, then turn audio,
 * video and data messages into MediaPackets for it (their bodies are FLV tag bodies already).
 */
export class RtmpPublish {
  publication: Publication | null = null;

  constructor(private readonly c: RtmpConn) {}

  start(streamId: number, name: StreamName, query: URLSearchParams): void {
    const c = this.c;
    const label = `${name.app}/${name.stream}`;
    const refuse = (code: string, description: string) => {
      c.deps.log.warn(`rtmp ${c.ip}: publish ${label} refused: ${description}`);
      c.status(streamId, 'error', code, description);
      c.closeAfterFlush();
    };
    if (!name.stream || !name.app) return refuse('NetStream.Publish.BadName', 'an app and a stream name are required');
    c.acquiring = true;
    c.authorise('publish', name, query).then((v) => {
      c.acquiring = false;
      if (c.socket.destroyed || c.closing) return v.ok && v.end();
      if (!v.ok) return refuse('NetStream.Publish.Denied', new GatewayError('PUBLISH_FORBIDDEN').message);
      this.begin(streamId, name, label, v, refuse);
    }).catch((err: unknown) => {
      c.acquiring = false;
      c.fail(err);
    });
  }

  private begin(streamId: number, name: StreamName, label: string, grant: Grant, refuse: (code: string, description: string) => void): void {
    const c = this.c;
    try {
      this.publication = startPublication(c.deps.hub, c.deps.log, {
        type: 'fmle-publish',
        ip: c.ip,
        name,
        url: `/${label}`,
        tcUrl: c.tcUrl,
        pageUrl: c.pageUrl,
        kick: () => c.socket.destroy(),
      }, 'RTMP', grant);
    } catch (err) {
      grant.end();
      if (err instanceof GatewayError) return refuse('NetStream.Publish.BadName', err.message);
      throw err;
    }
    const pub = this.publication;
    pub.source.once('end', () => {
      // Kicked through the API, taken over, or shutdown: the encoder's connection goes too.
      if (pub.finish('stream ended')) c.socket.destroy();
    });
    c.clearDeadline();
    c.trusted();
    c.status(streamId, 'status', 'NetStream.Publish.Start', `${label} is now published.`);
  }

  /** Audio (8) and video (9) messages: FLV tag bodies, classified once here for the hub. */
  media(msg: RtmpMessage): void {
    const pub = this.publication;
    if (!pub) return;
    const pkt = packetFromTag(msg.type, msg.timestamp, msg.payload);
    if (pkt) pub.source.push(pkt);
  }

  /** `@setDataFrame onMetaData {…}` from an encoder: stored as the FLV script tag `onMetaData {…}`. */
  data(msg: RtmpMessage, payload: Buffer): void {
    const pub = this.publication;
    if (!pub || payload.length === 0) return;
    const first = decodeAmf0(payload);
    const body = first.value === '@setDataFrame' ? payload.subarray(first.offset) : payload;
    const values = decodeAmf0All(body);
    if (values[0] === 'onMetaData') {
      // The tracks an HTTP-FLV player's header flags announce, before their first packets arrive.
      const meta = values[1] instanceof EcmaArray ? values[1].props : isObject(values[1]) ? values[1] : {};
      if (meta.videocodecid !== undefined) pub.source.declared.video = true;
      if (meta.audiocodecid !== undefined) pub.source.declared.audio = true;
    }
    pub.source.push(packetFromTag(TAG_SCRIPT, msg.timestamp, Buffer.from(body))!);
  }

  /** FCUnpublish/deleteStream: the encoder may stay connected and publish again; false if not publishing. */
  stop(streamId: number): boolean {
    const pub = this.publication;
    if (!pub) return false;
    this.c.status(streamId, 'status', 'NetStream.Unpublish.Success', `${pub.label} is now unpublished.`);
    this.publication = null;
    pub.finish('unpublished by the client');
    return true;
  }

  /** The connection ends (closed, timed out, malformed): the stream ends with it. */
  finish(reason: string): void {
    this.publication?.finish(reason);
    this.publication = null;
  }
}
