import { fileURLToPath } from 'node:url';
import { startProc, LOAD_CORE, type Proc } from './procs.js';

const FLV_LOAD = fileURLToPath(new URL('../flv-load.js', import.meta.url));

/** The player-load generator, a child on the load core, driven by request/answer messages. */
export class Generator {
  private readonly proc: Proc;
  private readonly waiting = new Map<number, (m: Record<string, unknown>) => void>();
  private id = 0;

  constructor() {
    this.proc = startProc('flv-load', LOAD_CORE, process.execPath, [FLV_LOAD], { ipc: true });
    this.proc.child.on('message', (m: { id: number }) => {
      this.waiting.get(m.id)?.(m as Record<string, unknown>);
      this.waiting.delete(m.id);
    });
  }

  call<T = Record<string, unknown>>(msg: Record<string, unknown>, timeoutMs = 120_000): Promise<T> {
    const id = ++this.id;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`flv-load: no answer to ${String(msg.cmd)} in ${timeoutMs} ms\n${this.proc.tail()}`)), timeoutMs);
      this.waiting.set(id, (m) => {
        clearTimeout(t);
        if (typeof m.error === 'string') reject(new Error(`flv-load: ${m.error}`));
        else resolve(m as T);
      });
      this.proc.child.send({ ...msg, id });
    });
  }

  async stop(): Promise<void> {
    await this.call({ cmd: 'stop' }, 5000).catch(() => undefined);
    await this.proc.stop();
  }
}

