import { spawn } from 'node:child_process';
import { LOAD_CORE } from './procs.js';

/**
 * The HTTP load tools, always on the load core: wrk for plain HTTP/1.1 keep-alive, h2load for
 * HTTPS (HTTP/2, and HTTP/1.1 with --h1). A run with any non-2xx answer or socket error is
 * reported as failed rather than as a figure: an error page is cheaper to serve than the file.
 */

export interface LoadResult {
  /** Requests per second completed with a 2xx answer. */
  rps: number;
  /** Bytes per second of response (headers and body). */
  bytesPerSec: number;
  /** Why the run does not count, or null. */
  error: string | null;
  /**
   * The load tool's CPU share of its core over the run (1 = saturated: the figure then measures
   * the client as much as the server), or null when it could not be read.
   */
  loadCpu?: number | null;
  /** h2load over TLS: the protocol and cipher the server chose ("TLSv1.3 TLS_AES_256_GCM_SHA384"). */
  tls?: string;
}

export interface LoadSpec {
  url: string;
  /** h2load only: more URLs on the same server, requested in turn with `url`. */
  moreUrls?: string[];
  conns: number;
  seconds: number;
  /** https only: HTTP/2 (several streams per connection) or HTTP/1.1 over TLS. */
  proto?: 'h1' | 'h2';
  /** h2load only: seconds of load before measuring. */
  warmupSeconds?: number;
}

/** Streams per HTTP/2 connection: what a browser page with many players would keep in flight. */
const H2_STREAMS = 10;

/** A load tool's output, and its CPU share of the load core over the run (bash's `times`). */
function run(cmd: string, args: string[], timeoutMs: number): Promise<{ out: string; cpu: number | null }> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', 'taskset -c "$0" "$@"; times', String(LOAD_CORE), cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const t0 = performance.now();
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const t = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // gone
      }
    }, timeoutMs);
    child.on('close', () => {
      clearTimeout(t);
      const wall = (performance.now() - t0) / 1000;
      // `times` ends the output: the shell's own user/sys line, then its children's.
      const m = /(\d+)m([\d.]+)s (\d+)m([\d.]+)s\s*$/.exec(out);
      const cpu = m ? (Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4])) / wall : null;
      resolve({ out: m ? out.slice(0, m.index) : out, cpu });
    });
  });
}

const UNITS: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 };

function bytes(n: string, unit: string): number {
  return Number(n) * (UNITS[unit.toUpperCase()] ?? 1);
}

export async function wrk(spec: LoadSpec): Promise<LoadResult> {
  const { out, cpu } = await run('wrk', ['-t1', `-c${spec.conns}`, `-d${spec.seconds}s`, '--timeout', '5s', spec.url], (spec.seconds + 15) * 1000);
  return { ...parseWrk(out), loadCpu: cpu };
}

export function parseWrk(out: string): LoadResult {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const tr = /Transfer\/sec:\s+([\d.]+)(\w+)/.exec(out);
  if (!rps) return { rps: 0, bytesPerSec: 0, error: `wrk: ${out.trim().split('\n').pop()}` };
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(out);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  let error: string | null = null;
  if (non2xx) error = `${non2xx[1]} non-2xx answers`;
  else if (sock && sock.slice(1).some((x) => Number(x) > 0)) error = `socket errors: ${sock[0]}`;
  return { rps: Number(rps[1]), bytesPerSec: tr ? bytes(tr[1], tr[2]) : 0, error };
}

export async function h2load(spec: LoadSpec): Promise<LoadResult> {
  const args = ['-c', String(spec.conns), '-D', String(spec.seconds)];
  // TLS handshakes of the 50 connections happen in the warm-up, outside the measured window.
  if (spec.warmupSeconds) args.push('--warm-up-time', String(spec.warmupSeconds));
  if (spec.proto === 'h1') args.push('--h1', '-m', '1');
  else args.push('-m', String(H2_STREAMS));
  const { out, cpu } = await run('h2load', [...args, spec.url, ...(spec.moreUrls ?? [])], (spec.seconds + 20) * 1000);
  const proto = /TLS Protocol: (\S+)/.exec(out);
  const cipher = /Cipher: (\S+)/.exec(out);
  return { ...parseH2load(out), loadCpu: cpu, tls: proto && cipher ? `${proto[1]} ${cipher[1]}` : undefined };
}

export function parseH2load(out: string): LoadResult {
  const fin = /finished in [\d.]+\w+, ([\d.]+) req\/s, ([\d.]+)(\w+)\/s/.exec(out);
  const req = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(out);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  if (!fin || !req) return { rps: 0, bytesPerSec: 0, error: `h2load: ${out.trim().split('\n').slice(-3).join(' / ')}` };
  let error: string | null = null;
  if (Number(req[4]) === 0) error = 'no request succeeded';
  // The status counts include the warm-up's requests; any non-2xx among them disqualifies the run.
  else if (codes && codes.slice(2).some((x) => Number(x) > 0)) error = `non-2xx answers: ${codes[0]}`;
  else if (Number(req[6]) > 0) error = `${req[6]} errored`;
  return { rps: Number(fin[1]), bytesPerSec: bytes(fin[2], fin[3]), error };
}
