import { BlockList, isIPv4, isIPv6 } from 'node:net';
import type { Action, SecurityConfig } from './types.js';

/**
 * SRS's `security { }` (srs_app_security.cpp): disabled → everything allowed; enabled → denied
 * unless an `allow` rule for the action matches the address, then denied if a `deny` rule
 * matches. Rules name `all`, an address or a CIDR, IPv4 or IPv6; an IPv4-mapped IPv6 peer
 * (`::ffff:10.0.0.1`, a dual-stack socket) is matched as its IPv4 address.
 */
export class SecurityRules {
  private readonly lists: Record<Action, { allow: Matcher; deny: Matcher }>;

  constructor(readonly config: SecurityConfig) {
    const m = (action: Action, allow: boolean) => new Matcher(config.rules.filter((r) => r.action === action && r.allow === allow).map((r) => r.target));
    this.lists = { publish: { allow: m('publish', true), deny: m('publish', false) }, play: { allow: m('play', true), deny: m('play', false) } };
  }

  /** Null when allowed, else the rule that refused, for the log line. */
  check(action: Action, ip: string): string | null {
    if (!this.config.enabled) return null;
    const addr = plainAddress(ip);
    const l = this.lists[action];
    if (!l.allow.matches(addr)) return `no "allow ${action}" rule matches ${addr}`;
    if (l.deny.matches(addr)) return `a "deny ${action}" rule matches ${addr}`;
    return null;
  }
}

class Matcher {
  private readonly list = new BlockList();
  private readonly any: boolean;
  private readonly empty: boolean;

  constructor(targets: string[]) {
    this.any = targets.includes('all');
    this.empty = targets.length === 0;
    for (const t of targets) {
      if (t === 'all') continue;
      const [addr, bits] = t.split('/');
      const type = isIPv6(addr) ? 'ipv6' : 'ipv4';
      if (bits !== undefined) this.list.addSubnet(addr, Number(bits), type);
      else this.list.addAddress(addr, type);
    }
  }

  matches(addr: string): boolean {
    if (this.any) return true;
    if (this.empty || !addr) return false;
    if (isIPv4(addr)) return this.list.check(addr, 'ipv4');
    return isIPv6(addr) && this.list.check(addr, 'ipv6');
  }
}

/** `::ffff:1.2.3.4` → `1.2.3.4`; anything else unchanged. */
export function plainAddress(ip: string): string {
  return ip.startsWith('::ffff:') && isIPv4(ip.slice(7)) ? ip.slice(7) : ip;
}
