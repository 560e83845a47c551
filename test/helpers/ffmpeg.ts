import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { track } from './proc.js';

/** Real encoders and probes for interop tests: Debian's ffmpeg and ffprobe, generated media only. */

export interface PublishOptions {
  /** Seconds of media to send (at real-time speed with -re). */
  seconds: number;
  audio?: boolean;
  video?: boolean;
  size?: string;
  fps?: number;
  /** Key-frame interval in frames. */
  gop?: number;
  /** Send as fast as possible instead of in real time. */
  fast?: boolean;
  /** Output options before the URL (e.g. ['-f', 'flv']). Default FLV. */
  format?: string[];
}

export function ffmpegArgs(url: string, o: PublishOptions): string[] {
  const video = o.video ?? true;
  const audio = o.audio ?? true;
  const args = ['-hide_banner', '-loglevel', 'error', '-nostdin'];
  if (!o.fast) args.push('-re');
  if (video) args.push('-f', 'lavfi', '-i', `testsrc2=size=${o.size ?? '320x240'}:rate=${o.fps ?? 25}`);
  if (audio) args.push('-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100');
  args.push('-t', String(o.seconds));
  if (video) args.push('-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-pix_fmt', 'yuv420p', '-g', String(o.gop ?? o.fps ?? 25));
  if (audio) args.push('-c:a', 'aac', '-b:a', '64k');
  args.push(...(o.format ?? ['-f', 'flv']), url);
  return args;
}

export interface Proc {
  child: ChildProcess;
  stderr: () => string;
  stdout: () => Buffer;
  exited: Promise<number | null>;
  kill: () => void;
}

export function run(cmd: string, args: string[]): Proc {
  const child = track(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
  let err = '';
  const out: Buffer[] = [];
  child.stderr!.on('data', (d: Buffer) => {
    if (err.length < 1_000_000) err += d.toString();
  });
  child.stdout!.on('data', (d: Buffer) => out.push(d));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return {
    child,
    stderr: () => err,
    stdout: () => Buffer.concat(out),
    exited,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

export function publish(url: string, o: PublishOptions): Proc {
  return run('ffmpeg', ffmpegArgs(url, o));
}

export interface ProbeStream {
  codec_type: string;
  codec_name: string;
  width?: number;
  height?: number;
  sample_rate?: string;
  channels?: number;
}

/** ffprobe's view of a URL: its streams, or the error it printed. */
export async function probe(url: string, timeoutS = 10): Promise<{ streams: ProbeStream[]; stderr: string; code: number | null }> {
  const p = run('ffprobe', ['-v', 'error', '-rw_timeout', String(timeoutS * 1_000_000), '-print_format', 'json', '-show_streams', url]);
  const timer = setTimeout(p.kill, timeoutS * 1000 + 2000);
  const code = await p.exited;
  clearTimeout(timer);
  let streams: ProbeStream[] = [];
  try {
    streams = (JSON.parse(p.stdout().toString() || '{}') as { streams?: ProbeStream[] }).streams ?? [];
  } catch {
    streams = [];
  }
  return { streams, stderr: p.stderr(), code };
}

/** Decodes `seconds` of a URL with ffmpeg; returns what ffmpeg printed at -v error (empty = clean). */
export async function decode(url: string, seconds: number, extra: string[] = []): Promise<{ stderr: string; code: number | null }> {
  const p = run('ffmpeg', ['-hide_banner', '-v', 'error', '-nostdin', ...extra, '-i', url, '-t', String(seconds), '-f', 'null', '-']);
  const timer = setTimeout(p.kill, (seconds + 20) * 1000);
  const code = await p.exited;
  clearTimeout(timer);
  return { stderr: p.stderr(), code };
}

/** Polls `fn` (sync, or async such as an API call: its promise is awaited) until it is truthy. */
export async function waitFor<T>(what: string, fn: () => T | undefined | null | false | Promise<T | undefined | null | false>, timeoutMs = 10_000, stepMs = 50): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    // Awaited: a pending promise is truthy, so an async condition used to pass at once.
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/**
 * Waits for a playlist's ENDLIST, then has ffprobe count its video frames: no `-v error` output, and
 * every line (ffprobe lists an HLS stream once per program it finds it in) says `expect`
 * ("codec,width,height,frames").
 */
export async function probeFinishedPlaylist(url: string, expect: string): Promise<void> {
  await waitFor('ENDLIST', async () => (await (await fetch(url)).text()).includes('#EXT-X-ENDLIST'), 20_000, 200);
  const p = run('ffprobe', ['-v', 'error', '-count_frames', '-select_streams', 'v', '-show_entries', 'stream=codec_name,width,height,nb_read_frames', '-of', 'csv=p=0', url]);
  const timer = setTimeout(p.kill, 30_000);
  await p.exited;
  clearTimeout(timer);
  assert.equal(p.stderr(), '');
  const lines = p.stdout().toString().split('\n').filter((l) => l.trim());
  assert.ok(lines.length > 0);
  for (const l of lines) assert.equal(l.trim(), expect);
}
