import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { timingSafeEqual } from 'node:crypto';

/**
 * Who may publish to a vhost (HTTP-FLV POST/PUT, RTMP publish, HLS PUT alike).
 * From the config's `vhost { publish { allow …; secret …; } }`; loopback only by default.
 */
export interface PublishPolicy {
  /** Addresses or CIDRs that may publish without a secret. */
  allow: string[];
  /** A token that lets any address publish when given as `?secret=`; null = none. */
  secret: string | null;
  /** A second publisher replaces the first instead of being refused. */
  takeover: boolean;
}

export const DEFAULT_PUBLISH_POLICY: PublishPolicy = {
  allow: ['127.0.0.0/8', '::1'],
  secret: null,
  takeover: false,
};

/** Compiles a policy once; `allowed(ip, secret)` is then a cheap check per publish. */
export class PublishGuard {
  private readonly list = new BlockList();
  private readonly any: boolean;

  constructor(readonly policy: PublishPolicy) {
    let any = false;
    for (const rule of policy.allow) {
      if (rule === 'all') {
        any = true;
        continue;
      }
      const [addr, bits] = rule.split('/');
      const type = isIPv6(addr) ? 'ipv6' : 'ipv4';
      if (bits !== undefined) this.list.addSubnet(addr, Number(bits), type);
      else this.list.addAddress(addr, type);
    }
    this.any = any;
  }

  allowed(ip: string, secret: string | null | undefined): boolean {
    if (this.any) return true;
    const addr = ip.startsWith('::ffff:') && isIPv4(ip.slice(7)) ? ip.slice(7) : ip;
    if (addr && this.list.check(addr, isIPv6(addr) ? 'ipv6' : 'ipv4')) return true;
    if (this.policy.secret === null || !secret) return false;
    const want = Buffer.from(this.policy.secret);
    const got = Buffer.from(secret);
    return want.length === got.length && timingSafeEqual(want, got);
  }
}

/**
 * The guard of each vhost's policy, compiled once per policy object: a config reload brings new
 * policy objects, so new guards, and the old ones are collected with the old config.
 */
export function guardsByVhost(policy: (vhost: string) => PublishPolicy): (vhost: string) => PublishGuard {
  const guards = new WeakMap<PublishPolicy, PublishGuard>();
  return (vhost) => {
    const p = policy(vhost);
    let g = guards.get(p);
    if (!g) {
      g = new PublishGuard(p);
      guards.set(p, g);
    }
    return g;
  };
}
