/**
 * The access-control settings the config parser builds (src/config/schema.ts) and the policy
 * chain (src/auth/policy.ts) reads. Plain data: parsed once, swapped whole on reload.
 */

export type Action = 'publish' | 'play';

/** SRS `http_api { auth { enabled; username; password; } }`: HTTP Basic on every /api/ path. */
export interface ApiAuth {
  enabled: boolean;
  username: string;
  password: string;
}

/** One SRS security rule: `allow play 10.0.0.0/8;`, `deny publish all;`. */
export interface SecurityRule {
  allow: boolean;
  action: Action;
  /** `all`, an address, or a CIDR. */
  target: string;
}

/** SRS `security { enabled; allow|deny …; }`. */
export interface SecurityConfig {
  enabled: boolean;
  rules: SecurityRule[];
}

export const HOOK_EVENTS = ['on_connect', 'on_close', 'on_publish', 'on_unpublish', 'on_play', 'on_stop', 'on_hls', 'on_dvr'] as const;
export type HookEvent = (typeof HOOK_EVENTS)[number];

/** SRS `http_hooks { enabled; on_publish URL …; … }` plus `hooks_timeout`. */
export interface HooksConfig {
  enabled: boolean;
  urls: Record<HookEvent, URL[]>;
  timeoutMs: number;
}

/** `token { enabled; require publish play; secret S; | jwks URL; }`. */
export interface TokenConfig {
  enabled: boolean;
  require: { publish: boolean; play: boolean };
  /** HS256 shared secret; null when a JWKS URL is given. */
  secret: string | null;
  jwks: URL | null;
}

export interface VhostAccess {
  security: SecurityConfig;
  hooks: HooksConfig;
  token: TokenConfig;
}

/** Defaults: everything off, as in SRS. */
export function defaultVhostAccess(): VhostAccess {
  return {
    security: { enabled: false, rules: [] },
    hooks: { enabled: false, urls: Object.fromEntries(HOOK_EVENTS.map((e) => [e, []])) as unknown as Record<HookEvent, URL[]>, timeoutMs: DEFAULT_HOOKS_TIMEOUT_MS },
    token: { enabled: false, require: { publish: false, play: false }, secret: null, jwks: null },
  };
}

/** SRS waits on a hook as long as its HTTP client's timeout; a few seconds keeps a stuck hook from holding a publisher for long. */
export const DEFAULT_HOOKS_TIMEOUT_MS = 3_000;
