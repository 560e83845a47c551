import os from 'node:os';

/**
 * CPU figures for /api/v1/summaries. SRS samples /proc every few seconds; we sample on demand
 * and report the usage since the previous read (or since start on the first), so a console
 * polling every few seconds sees the same kind of number without a timer running here.
 */
export class CpuSampler {
  private lastWall = performance.now();
  private lastProc = process.cpuUsage();
  private lastSys = systemTimes();
  private selfPercent = 0;
  private sysPercent = 0;

  /** Re-samples when at least a second has passed; returns [self %, system %]. */
  read(): { self: number; system: number } {
    const wall = performance.now();
    if (wall - this.lastWall >= 1000) {
      const proc = process.cpuUsage();
      const usedUs = proc.user - this.lastProc.user + (proc.system - this.lastProc.system);
      this.selfPercent = (usedUs / 1000 / (wall - this.lastWall)) * 100;
      const sys = systemTimes();
      const total = sys.total - this.lastSys.total;
      this.sysPercent = total > 0 ? ((total - (sys.idle - this.lastSys.idle)) / total) * 100 : 0;
      this.lastWall = wall;
      this.lastProc = proc;
      this.lastSys = sys;
    }
    return { self: round2(this.selfPercent), system: round2(this.sysPercent) };
  }
}

function systemTimes(): { idle: number; total: number } {
  let idle = 0;
  let total = 0;
  for (const c of os.cpus()) {
    idle += c.times.idle;
    total += c.times.user + c.times.nice + c.times.sys + c.times.idle + c.times.irq;
  }
  return { idle, total };
}

export function round2(n: number): number {
  return Math.round(n * 100) / 100;
}
