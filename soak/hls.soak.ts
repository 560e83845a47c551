import { test } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Hub } from '../src/live/hub.js';
import { DEFAULT_SOURCE_OPTIONS } from '../src/live/source.js';
import type { Batch, Sink } from '../src/live/types.js';
import { loadConfigText } from '../src/config/index.js';
import { memoryLogger } from '../src/log.js';
import { TsMuxer } from '../src/media/ts/muxer.js';
import { HlsOutput } from '../src/outputs/hls.js';
import { syntheticStream } from '../test/helpers/synthetic.js';

/**
 * An hour of live media (25 fps H.264 with 2 s GOPs, AAC) pushed through a real hub source into
 * the HLS segmenter and a live-TS muxer as fast as the CPU allows: memory must stay flat and the
 * playlist window bounded, however long the stream runs.
 */

const MEDIA_MS = 60 * 60_000;
const SAMPLE_EVERY_MS = 5 * 60_000;

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

function heapMb(): { heap: number; rss: number } {
  gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed / 1e6, rss: m.rss / 1e6 };
}

/** A live .ts player that reads instantly: remuxes every batch, keeps nothing. */
class TsCounter implements Sink {
  bytes = 0;
  private readonly mux = new TsMuxer({ video: true, audio: 'aac' }, { tablesAtKeyframes: true });
  backlog(): number {
    return 0;
  }
  write(b: Batch): void {
    this.bytes += this.mux.muxAll(b.packets).length;
  }
  end(): void {}
}

test('an hour of media in seconds: heap and RSS flat, the HLS window bounded', async (t) => {
  const config = loadConfigText('vhost __defaultVhost__ { hls { enabled on; hls_fragment 2; hls_window 12; } }', 'soak.conf');
  const hub = new Hub({ sourceOptions: () => ({ ...DEFAULT_SOURCE_OPTIONS, mwLatencyMs: 0 }), takeover: () => false, maxStreams: 0 });
  const hls = new HlsOutput({ hub, vhost: () => config.vhosts[0], log: memoryLogger().log });
  const name = { vhost: '__defaultVhost__', app: 'live', stream: 'soak' };
  const source = hub.publish(name, null);
  const ts = new TsCounter();
  source.subscribe(ts, null);
  const started = Date.now();
  const samples: { atMin: number; heap: number; rss: number; window: number; hlsBytes: number }[] = [];
  let nextSample = SAMPLE_EVERY_MS;
  let maxWindow = 0;
  let n = 0;
  for (const p of syntheticStream(MEDIA_MS, { gop: 50, frameBytes: 3000 })) {
    source.push(p);
    // Let the source flush (setImmediate) every few packets, as a real socket's reads would.
    if (++n % 64 === 0) await new Promise((r) => setImmediate(r));
    if (p.kind === 'video' && p.dts >= nextSample) {
      await new Promise((r) => setImmediate(r));
      const w = hls.find(name)!.window().length;
      maxWindow = Math.max(maxWindow, w);
      samples.push({ atMin: Math.round(p.dts / 60_000), ...heapMb(), window: w, hlsBytes: hls.bytes() });
      nextSample += SAMPLE_EVERY_MS;
    }
  }
  source.end();
  const seconds = (Date.now() - started) / 1000;
  t.diagnostic(`${MEDIA_MS / 60_000} min of media in ${seconds.toFixed(1)} s; live TS ${Math.round(ts.bytes / 1e6)} MB`);
  for (const s of samples) t.diagnostic(`${s.atMin} min: heap ${s.heap.toFixed(1)} MB, rss ${s.rss.toFixed(1)} MB, window ${s.window} segments, hls ${(s.hlsBytes / 1e6).toFixed(1)} MB`);
  // After ten minutes everything is warm; from there on nothing may grow.
  const warm = samples.find((s) => s.atMin >= 10)!;
  const last = samples.at(-1)!;
  assert.ok(last.heap - warm.heap < 10, `heap grew ${(last.heap - warm.heap).toFixed(1)} MB from minute 10 to the end`);
  assert.ok(last.rss - warm.rss < 40, `RSS grew ${(last.rss - warm.rss).toFixed(1)} MB from minute 10 to the end`);
  assert.ok(maxWindow <= 7, `window of ${maxWindow} segments for 12 s of 2 s segments`);
  assert.ok(Math.max(...samples.map((s) => s.hlsBytes)) < 2 * warm.hlsBytes, 'HLS bytes stay at the window size');
  assert.ok(hls.find(name)!.ended);
  hls.close();
});
