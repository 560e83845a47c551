import { ConfigError, type Directive } from './tree.js';

/**
 * `access_log FORMAT [PATH] [buffer=SIZE] [flush=TIME];` — NGINX's options for the buffer and the
 * file: lines are written when `buffer` bytes wait or the oldest is `flush` old, whichever first.
 * Without a path, lines go to stdout.
 */
export interface AccessLogConfig {
  format: 'combined' | 'json' | 'off';
  /** A file to append to (relative paths from the working directory); null = stdout. */
  path: string | null;
  bufferBytes: number;
  flushMs: number;
}

export const ACCESS_LOG_BUFFER_BYTES = 64 * 1024;
/** Lines reach the log within this time by default; NGINX users often set `flush=1s`. */
export const ACCESS_LOG_FLUSH_MS = 100;
/** Past these a line could wait long enough in memory to look lost. */
const MAX_BUFFER_BYTES = 16 * 1024 * 1024;
const MAX_FLUSH_MS = 60_000;

export function accessLogConfig(d: Directive | undefined): AccessLogConfig {
  const out: AccessLogConfig = { format: 'combined', path: null, bufferBytes: ACCESS_LOG_BUFFER_BYTES, flushMs: ACCESS_LOG_FLUSH_MS };
  if (!d) return out;
  const bad = (msg: string): never => {
    throw new ConfigError(d.file, d.line, msg);
  };
  const [format, ...rest] = d.args;
  if (format !== 'combined' && format !== 'json' && format !== 'off') bad(`"access_log" expects combined, json or off, got "${format}"`);
  out.format = format as AccessLogConfig['format'];
  for (const a of rest) {
    const eq = a.indexOf('=');
    if (eq < 0) {
      if (out.path !== null) bad(`"access_log" takes one file, got "${out.path}" and "${a}"`);
      out.path = a;
      continue;
    }
    const key = a.slice(0, eq);
    const value = a.slice(eq + 1);
    if (key === 'buffer') {
      const m = /^(\d+)([kKmM])?$/.exec(value);
      const n = m ? Number(m[1]) * ({ k: 1024, m: 1024 ** 2 }[(m[2] ?? '').toLowerCase()] ?? 1) : NaN;
      if (!(n >= 1 && n <= MAX_BUFFER_BYTES)) bad(`"access_log" buffer= expects a size from 1 to 16m such as 64k, got "${value}"`);
      out.bufferBytes = n;
    } else if (key === 'flush') {
      const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value);
      const n = m ? Math.round(Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 'm' ? 60_000 : 1000)) : NaN;
      if (!(n >= 1 && n <= MAX_FLUSH_MS)) bad(`"access_log" flush= expects a time up to 60s such as 1s or 100ms, got "${value}"`);
      out.flushMs = n;
    } else {
      bad(`"access_log" has no option "${key}" (buffer= and flush= are known)`);
    }
  }
  return out;
}
