import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Holding a server to a share of one core with the kernel's CPU bandwidth control (a cgroup's
 * CFS quota), so that the server, not the load tool, is what runs out.
 *
 * Why a row needs it: a server sending a large file with sendfile(2) never touches the bytes,
 * while the client copies every one of them out of the kernel. On 512 KB answers wrk's core is
 * busy before the server's is, and req/s then measures wrk. With every server held to the same
 * share of a core, the load core has room to spare and req/s is the server's again.
 *
 * cgroup v1 (a `cpu` hierarchy with cpu.cfs_quota_us) and v2 (cpu.max) are both handled. Needs
 * root; `open` answers why not when the machine does not allow it.
 */

/** The kernel's default CFS period: the quota is a share of each 100 ms. */
const PERIOD_US = 100_000;

export interface CpuCap {
  /** e.g. "50% of a core (cgroup v1 CFS quota, 100 ms period)" */
  readonly describe: string;
  /** Moves the processes into the capped group; the returned function moves them back. */
  hold(pids: number[]): () => void;
  /** Removes the group (after every held process was moved back or has exited). */
  close(): void;
}

interface Layout {
  version: 1 | 2;
  /** Mount point of the hierarchy holding the cpu controller. */
  root: string;
}

function layout(): Layout | string {
  if (existsSync('/sys/fs/cgroup/cpu/cpu.cfs_quota_us')) return { version: 1, root: '/sys/fs/cgroup/cpu' };
  const controllers = '/sys/fs/cgroup/cgroup.controllers';
  if (existsSync(controllers)) {
    return readFileSync(controllers, 'utf8').split(/\s+/).includes('cpu') ? { version: 2, root: '/sys/fs/cgroup' } : 'cgroup v2 without the cpu controller';
  }
  return 'no cgroup cpu controller mounted at /sys/fs/cgroup';
}

/** The group a process is in now, as a directory of the hierarchy (where to move it back to). */
function groupOf(pid: number, l: Layout): string {
  for (const line of readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n')) {
    const [, controllers, path] = line.split(':');
    if (path === undefined) continue;
    if (l.version === 2 ? controllers === '' && line.startsWith('0:') : controllers.split(',').includes('cpu')) return join(l.root, path);
  }
  return l.root;
}

/** The group a benchmark run of process `pid` makes, under whichever hierarchy holds the cpu controller. */
export function capGroupName(pid: number): string {
  return `streamgate-bench-${pid}`;
}

/** A capped group holding `share` of one core (0 < share ≤ 1), or the reason there can be none. */
export function openCpuCap(share: number, name = capGroupName(process.pid)): CpuCap | string {
  const l = layout();
  if (typeof l === 'string') return l;
  const dir = join(l.root, name);
  const quota = Math.round(PERIOD_US * share);
  const cap: CpuCap = {
    describe: `${Math.round(share * 100)}% of a core (cgroup v${l.version} CFS quota, ${PERIOD_US / 1000} ms period)`,
    hold(pids) {
      const moved: (readonly [number, string])[] = [];
      const back = () => {
        for (const [pid, home] of moved) {
          try {
            writeFileSync(join(home, 'cgroup.procs'), String(pid));
          } catch (e) {
            // A process that has exited has nothing to move; anything else is worth knowing.
            if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
          }
        }
      };
      try {
        for (const pid of pids) {
          const home = groupOf(pid, l);
          writeFileSync(join(dir, 'cgroup.procs'), String(pid));
          moved.push([pid, home]);
        }
      } catch (e) {
        back();
        throw e;
      }
      return back;
    },
    close() {
      rmdirSync(dir);
    },
  };
  try {
    if (l.version === 2) {
      // A v2 group gets the cpu controller only when its parent hands it down. It stays handed
      // down afterwards: that by itself limits nothing.
      const ctl = join(l.root, 'cgroup.subtree_control');
      if (!readFileSync(ctl, 'utf8').split(/\s+/).includes('cpu')) writeFileSync(ctl, '+cpu');
    }
    mkdirSync(dir, { recursive: true });
    if (l.version === 1) {
      writeFileSync(join(dir, 'cpu.cfs_period_us'), String(PERIOD_US));
      writeFileSync(join(dir, 'cpu.cfs_quota_us'), String(quota));
    } else {
      writeFileSync(join(dir, 'cpu.max'), `${quota} ${PERIOD_US}`);
    }
    // Moving a process in and out can still be refused (a container's delegation rules): found
    // out here, on a process of no importance, rather than with a server halfway through a run.
    const probe = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], { stdio: 'ignore' });
    try {
      cap.hold([probe.pid!])();
    } finally {
      probe.kill('SIGKILL');
    }
  } catch (e) {
    try {
      rmdirSync(dir);
    } catch {
      // never made
    }
    return `cannot set a CPU quota (${(e as Error).message.split('\n')[0]})`;
  }
  return cap;
}
