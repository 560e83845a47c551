import os from 'node:os';
import { VERSION } from '../version.js';
import type { ApiKit, Resource } from './kit.js';
import { CpuSampler, round2 } from './system.js';

/**
 * GET /api/v1/summaries: SRS's process and system figures. Those SRS reads from /proc that Node
 * does not expose (disk rates, swap, TIME_WAIT sockets) are 0, with SRS's field names (its
 * misspelt `ilde_time` included) so consoles read them.
 */
export function summaries(kit: ApiKit): Resource {
  const cpu = new CpuSampler();
  const { deps } = kit;
  return {
    name: 'summaries',
    about: 'pid, uptime, cpu, memory, connections, bytes',
    get: () => {
      const now = Date.now();
      const mem = process.memoryUsage().rss;
      const total = os.totalmem();
      const load = os.loadavg();
      const c = cpu.read();
      const t = deps.traffic?.() ?? { connections: 0, recvBytes: 0, sendBytes: 0 };
      return kit.envelope({
        data: {
          ok: true,
          now_ms: now,
          self: {
            version: VERSION,
            pid: process.pid,
            ppid: process.ppid,
            argv: process.argv.join(' '),
            cwd: process.cwd(),
            mem_kbyte: Math.round(mem / 1024),
            mem_percent: round2(mem / total),
            cpu_percent: c.self,
            srs_uptime: Math.floor((now - deps.startedAt) / 1000),
          },
          system: {
            cpu_percent: c.system,
            disk_read_KBps: 0,
            disk_write_KBps: 0,
            disk_busy_percent: 0,
            mem_ram_kbyte: Math.round(total / 1024),
            mem_ram_percent: round2(1 - os.freemem() / total),
            mem_swap_kbyte: 0,
            mem_swap_percent: 0,
            cpus: os.cpus().length,
            cpus_online: os.availableParallelism(),
            uptime: os.uptime(),
            ilde_time: 0,
            load_1m: round2(load[0]),
            load_5m: round2(load[1]),
            load_15m: round2(load[2]),
            net_sample_time: now,
            net_recv_bytes: t.recvBytes,
            net_send_bytes: t.sendBytes,
            net_recvi_bytes: 0,
            net_sendi_bytes: 0,
            srs_sample_time: now,
            srs_recv_bytes: t.recvBytes,
            srs_send_bytes: t.sendBytes,
            conn_sys: t.connections,
            conn_sys_et: t.connections,
            conn_sys_tw: 0,
            conn_sys_udp: 0,
            conn_srs: t.connections,
          },
        },
      });
    },
  };
}
