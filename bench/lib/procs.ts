import { spawn, spawnSync, execFileSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import net from 'node:net';
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Processes the suite starts: each in its own process group (so a server's workers die with it),
 * pinned to one core with taskset, registered so that a normal end, an error or SIGINT stops them
 * all. Also the /proc readings the figures rest on (CPU ticks, RSS).
 */

/** Core of the server under test; load generators, publishers and the proxy upstream get the other. */
export const SERVER_CORE = 0;
export const LOAD_CORE = 1;

/** Linux's USER_HZ: /proc/PID/stat counts CPU time in these ticks. */
const CLK_TCK = 100;

export interface Proc {
  name: string;
  child: ChildProcess;
  pid: number;
  /** The last lines it printed (for error messages). */
  tail(): string;
  /** Everything it printed so far. */
  output(): string;
  stop(): Promise<void>;
}

const running = new Set<Proc>();
let started = 0;

/**
 * Starts `cmd args` pinned to `core`, in a new process group. Its output goes to a file, not a
 * pipe: a server logging into a pipe the reader drains late would block on it (Node's stdout to a
 * pipe is synchronous), which would be measured as the server being slow.
 */
export function startProc(name: string, core: number, cmd: string, args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv; ipc?: boolean; logDir?: string } = {}): Proc {
  const logFile = join(o.logDir ?? tmpdir(), `${name}-${process.pid}-${++started}.log`);
  const fd = openSync(logFile, 'w');
  const stdio: StdioOptions = o.ipc ? ['ignore', fd, fd, 'ipc'] : ['ignore', fd, fd];
  const child = spawn('taskset', ['-c', String(core), cmd, ...args], { cwd: o.cwd, env: o.env ?? process.env, detached: true, stdio });
  closeSync(fd);
  const output = () => {
    try {
      return readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };
  const tail = () => output().slice(-4000);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const p: Proc = {
    name,
    child,
    pid: child.pid!,
    tail,
    output,
    async stop() {
      running.delete(p);
      if (child.exitCode === null && child.signalCode === null) {
        killGroup(child.pid!, 'SIGTERM');
        const t = setTimeout(() => killGroup(child.pid!, 'SIGKILL'), 3000);
        await exited;
        clearTimeout(t);
      }
      // Workers of a server (nginx) may outlive the master by a moment.
      killGroup(child.pid!, 'SIGKILL');
      rmSync(logFile, { force: true });
    },
  };
  running.add(p);
  return p;
}

function killGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    // already gone
  }
}

/** Stops every process still registered (end of run, error, SIGINT). */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((p) => p.stop()));
}

/** Synchronous last resort on process exit: no awaiting is possible there. */
export function killAllNow(): void {
  for (const p of running) killGroup(p.pid, 'SIGKILL');
  running.clear();
}

/**
 * `n` distinct free ports on 127.0.0.1: all held open until the last is known, so two asked
 * for together (a server's HTTP and HTTPS ports) are never the same one handed out twice.
 */
export async function freePorts(n: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const srv = net.createServer();
      servers.push(srv);
      await new Promise<void>((ok, fail) => srv.once('error', fail).listen(0, '127.0.0.1', ok));
    }
    return servers.map((x) => (x.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((x) => new Promise((r) => x.close(r))));
  }
}

export async function freePort(): Promise<number> {
  return (await freePorts(1))[0];
}

/** Resolves once something accepts TCP connections on the port; throws with the process's output otherwise. */
export async function waitPort(port: number, proc: Proc, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (proc.child.exitCode !== null) throw new Error(`${proc.name} exited (${proc.child.exitCode}) before listening on ${port}:\n${proc.tail()}`);
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        r(true);
      });
      s.once('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`${proc.name} did not listen on ${port} within ${timeoutMs} ms:\n${proc.tail()}`);
    await sleep(100);
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** User + system CPU time of a process in seconds. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start at state; utime and stime are 14 and 15.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

/** A process and its descendants (NGINX's worker is a child of its master); [] once gone. */
export function treePids(pid: number): number[] {
  let kids: string;
  try {
    kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8');
  } catch {
    return [];
  }
  return [pid, ...kids.split(' ').filter((k) => k.trim()).flatMap((k) => treePids(Number(k)))];
}

/** CPU seconds of a process and its descendants; 0 once gone. */
export function treeCpuSeconds(pid: number): number {
  let total = 0;
  for (const p of treePids(pid)) {
    try {
      total += cpuSeconds(p);
    } catch {
      // exited between the listing and the reading
    }
  }
  return total;
}

/** Resident set size in bytes. */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Measures a process's CPU share of one core (percent) over what `during` takes. */
export async function cpuPercentDuring<T>(pid: number, during: () => Promise<T>): Promise<{ cpu: number; value: T }> {
  const c0 = cpuSeconds(pid);
  const t0 = performance.now();
  const value = await during();
  const cpu = ((cpuSeconds(pid) - c0) / ((performance.now() - t0) / 1000)) * 100;
  return { cpu, value };
}

/** `which`, without throwing. */
export function which(cmd: string): string | null {
  try {
    return execFileSync('which', [cmd], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

/** First line of a command's output, stdout or stderr (nginx -v prints to stderr); '' when it fails. */
export function firstLine(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n')[0].trim();
}
