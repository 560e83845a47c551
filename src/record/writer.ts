import { mkdir, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * Bytes a recording may have queued for the disk before it is dropped. At 2 Mbps this is 32 s of
 * media: a disk that falls that far behind is slower than the stream, and waiting longer only
 * turns its slowness into memory.
 */
export const DVR_QUEUE_MAX_BYTES = 8 * 1024 * 1024;
/** Buffers handed to one writev(2) at most (Linux's IOV_MAX is 1024). */
const WRITEV_MAX_BUFFERS = 256;
/**
 * Appends wait this long for more to join them in one write, unless this many bytes are queued.
 * Each write is a round trip to the thread pool (a futex wake each way): written as each batch of
 * media arrived, 20 streams at 2 Mbps made about 500 writes a second, and recording cost 6–9% of a
 * core on top of serving them (measured on the bench's dvr row). What waits is at most this much
 * of the stream more than the disk already holds, should the process be killed.
 */
export const COALESCE_MS = 100;
const COALESCE_BYTES = 256 * 1024;

interface Op {
  data: Buffer;
  /** Absolute position (a patch of bytes written earlier), or undefined to append. */
  at?: number;
}

/**
 * One file written in the background: appends and patches are queued, one write at a time goes
 * to the thread pool, and the event loop never waits on the disk. The queue is bounded: `write`
 * answers false past DVR_QUEUE_MAX_BYTES and the caller drops the recording. The first error
 * (ENOSPC, EACCES, EROFS, a vanished directory) fails the file: the queue is emptied, nothing
 * more is written, and `onError` is called once.
 */
export class QueuedFile {
  private fh: FileHandle | null = null;
  private readonly ops: Op[] = [];
  private queuedBytes = 0;
  private running = false;
  /** Appends are waiting for more to join them (COALESCE_MS). */
  private waiting: NodeJS.Timeout | null = null;
  private readonly opened: Promise<void>;
  private idle: (() => void) | null = null;
  /** Bytes of the file (appends that reached the disk). */
  written = 0;
  /** Appended bytes so far, queued ones included: the next append's position. */
  length = 0;
  error: NodeJS.ErrnoException | null = null;
  /** The file exists on disk (opened at least). */
  created = false;

  constructor(
    readonly path: string,
    private readonly onError: (err: NodeJS.ErrnoException) => void,
    private readonly maxQueued = DVR_QUEUE_MAX_BYTES,
  ) {
    this.opened = this.openFile();
  }

  get queued(): number {
    return this.queuedBytes;
  }

  /** Queues an append; false when the queue is over its bound or the file has failed (nothing queued). */
  write(data: Buffer): boolean {
    if (this.error) return false;
    if (this.queuedBytes + data.length > this.maxQueued) return false;
    this.ops.push({ data });
    this.queuedBytes += data.length;
    this.length += data.length;
    if (this.queuedBytes >= COALESCE_BYTES) this.pump();
    else if (this.waiting === null && !this.running) this.waiting = setTimeout(() => this.pump(), COALESCE_MS);
    return true;
  }

  /** Queues a rewrite of bytes already appended (a duration filled in at close). */
  patch(at: number, data: Buffer): void {
    if (this.error) return;
    this.ops.push({ data, at });
    this.queuedBytes += data.length;
    this.pump();
  }

  /**
   * Writes what is queued, closes, and renames the file to `finalPath` when given. A file that
   * failed part way (the disk filled) is renamed too: what reached the disk plays.
   */
  async close(finalPath?: string): Promise<void> {
    await this.opened.catch(() => {});
    if (this.running || this.ops.length > 0) {
      const done = new Promise<void>((r) => (this.idle = r));
      this.pump();
      await done;
    }
    const fh = this.fh;
    this.fh = null;
    if (fh) await fh.close().catch(() => {});
    if (!finalPath || !this.created) return;
    // A file the disk took nothing of (full from the start) is removed, not kept as an empty recording.
    if (this.written > 0) await rename(this.path, finalPath).catch((err: NodeJS.ErrnoException) => this.fail(err));
    else await unlink(this.path).catch(() => {});
  }

  private async openFile(): Promise<void> {
    try {
      await mkdir(dirname(this.path), { recursive: true });
      this.fh = await open(this.path, 'w', 0o644);
      this.created = true;
    } catch (err) {
      this.fail(err as NodeJS.ErrnoException);
    }
    this.pump();
  }

  private pump(): void {
    if (this.waiting !== null) {
      clearTimeout(this.waiting);
      this.waiting = null;
    }
    if (this.running || !this.fh) return;
    this.running = true;
    void this.drain().finally(() => {
      this.running = false;
      if (this.ops.length > 0 && !this.error) this.pump();
      else if (this.idle) {
        const r = this.idle;
        this.idle = null;
        r();
      }
    });
  }

  private async drain(): Promise<void> {
    while (this.ops.length > 0 && !this.error && this.fh) {
      let n = 0;
      if (this.ops[0].at !== undefined) n = 1;
      else while (n < this.ops.length && n < WRITEV_MAX_BUFFERS && this.ops[n].at === undefined) n++;
      const batch = this.ops.splice(0, n);
      const bytes = batch.reduce((s, o) => s + o.data.length, 0);
      try {
        if (batch[0].at !== undefined) await this.fh.write(batch[0].data, 0, batch[0].data.length, batch[0].at);
        else {
          const r = await this.fh.writev(batch.map((o) => o.data), this.written);
          // A short write (a disk filling up) leaves the rest unwritten: that is a failure here.
          if (r.bytesWritten !== bytes) throw Object.assign(new Error('short write'), { code: 'ENOSPC' });
          this.written += bytes;
        }
      } catch (err) {
        this.fail(err as NodeJS.ErrnoException);
      }
      if (!this.error) this.queuedBytes -= bytes;
    }
  }

  private fail(err: NodeJS.ErrnoException): void {
    if (this.error) return;
    this.error = err;
    this.ops.length = 0;
    this.queuedBytes = 0;
    this.onError(err);
  }
}
