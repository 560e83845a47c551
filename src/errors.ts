/**
 * The one catalogue of errors streamgate answers with. Every layer throws a GatewayError with a
 * code from here; the HTTP layer turns it into a status and a short body in one place, and the
 * log line names the code, so an operator can grep for it.
 */
export const ERRORS = {
  BAD_REQUEST: { status: 400, message: 'bad request' },
  UNAUTHORIZED: { status: 401, message: 'authentication required' },
  FORBIDDEN: { status: 403, message: 'forbidden' },
  PLAY_FORBIDDEN: { status: 403, message: 'playing this stream is not allowed' },
  NOT_FOUND: { status: 404, message: 'not found' },
  URI_TOO_LONG: { status: 414, message: 'request-target too long' },
  METHOD_NOT_ALLOWED: { status: 405, message: 'method not allowed' },
  RANGE_NOT_SATISFIABLE: { status: 416, message: 'range not satisfiable' },
  BODY_TOO_LARGE: { status: 413, message: 'request body too large' },
  STORE_FULL: { status: 507, message: 'upload store is full' },
  STREAM_NOT_FOUND: { status: 404, message: 'stream not found' },
  TRACK_ABSENT: { status: 404, message: 'the stream has no such track' },
  STREAM_BUSY: { status: 409, message: 'stream is already being published' },
  PUBLISH_FORBIDDEN: { status: 403, message: 'publishing is not allowed from this address without a valid secret' },
  BAD_MEDIA: { status: 400, message: 'malformed media' },
  LIMIT_REACHED: { status: 503, message: 'server limit reached' },
  API_NOT_FOUND: { status: 404, message: 'no such API' },
  RTC_NO_BACKEND: { status: 501, message: 'no WebRTC backend: proxy /rtc/ to one (e.g. SRS on 1985) with a proxy route' },
  INTERNAL: { status: 500, message: 'internal server error' },
  NOT_IMPLEMENTED: { status: 501, message: 'not implemented' },
  UPSTREAM_REFUSED: { status: 502, message: 'upstream refused the connection' },
  UPSTREAM_ERROR: { status: 502, message: 'upstream failed' },
  UPSTREAM_TIMEOUT: { status: 504, message: 'upstream timed out' },
  SHUTTING_DOWN: { status: 503, message: 'server is shutting down' },
} as const;

export type ErrorCode = keyof typeof ERRORS;

export class GatewayError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    detail?: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(detail ? `${ERRORS[code].message}: ${detail}` : ERRORS[code].message);
    this.status = ERRORS[code].status;
  }
}
