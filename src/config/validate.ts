import { ConfigError, type Directive } from './tree.js';
import { ROOT_SPEC, VHOST_SPEC, type BlockSpec, type Spec } from './spec.js';
import { SRS_BLOCKS, type SrsBlock } from './srs-compat.js';

/**
 * Checks every directive against the spec: names, block-ness, argument counts, duplicates.
 * `path` names the enclosing block for srs-compat.ts (`vhost.hls`); `quiet` is set inside a block
 * that says `enabled off;`, where an ignored directive would do nothing in SRS either, so it gets
 * no warning.
 */
export function validate(dirs: Directive[], spec: BlockSpec, where: string, warn: (msg: string) => void, path = '', quiet = false): void {
  const seen = new Map<string, Directive>();
  for (const d of dirs) {
    const s: Spec | undefined = spec.children[d.name];
    if (!s) throw new ConfigError(d.file, d.line, `unknown directive "${d.name}" ${where}`);
    const here = path ? `${path}.${d.name}` : d.name;
    if (s.kind === 'ignored') {
      const srs = SRS_BLOCKS[here];
      if (d.children && srs) checkSrsBlock(d.children, srs, d.name);
      if (!quiet && !(d.children && srs && disabled(d.children, srs.offByDefault))) {
        warn(`${d.file}:${d.line}: "${d.name}" is accepted for SRS compatibility and has no effect in streamgate`);
      }
      continue;
    }
    const first = seen.get(d.name);
    if (first && !s.repeat) {
      throw new ConfigError(d.file, d.line, `duplicate directive "${d.name}" ${where} (first at ${first.file}:${first.line})`);
    }
    seen.set(d.name, d);
    if (s.kind === 'leaf') {
      if (d.children) throw new ConfigError(d.file, d.line, `"${d.name}" takes arguments and ";", not a block`);
      if (d.args.length < s.min || d.args.length > s.max) {
        const want = s.min === s.max ? `${s.min}` : `${s.min} to ${s.max}`;
        throw new ConfigError(d.file, d.line, `"${d.name}" expects ${want} argument${s.max === 1 ? '' : 's'}, got ${d.args.length}`);
      }
    } else {
      if (!d.children) throw new ConfigError(d.file, d.line, `"${d.name}" must be a block: expected "{"`);
      if (d.args.length !== s.args) {
        throw new ConfigError(d.file, d.line, s.args === 0 ? `block "${d.name}" takes no arguments` : `block "${d.name}" expects ${s.args} argument (a name)`);
      }
      validate(d.children, s, `in ${d.name}`, warn, here, quiet || disabled(d.children, false));
    }
  }
}

/** `enabled off;` (anything but `on`, as SRS reads it), or no `enabled` in a block SRS runs only when enabled. */
function disabled(children: Directive[], offByDefault: boolean): boolean {
  const e = children.find((c) => c.name === 'enabled');
  return e ? e.args[0] !== 'on' : offByDefault;
}

/** Names inside an ignored SRS block: the ones SRS knows pass, anything else is a misspelling. */
function checkSrsBlock(dirs: Directive[], srs: SrsBlock, name: string): void {
  for (const d of dirs) {
    if (!srs.children.includes(d.name)) throw new ConfigError(d.file, d.line, `unknown directive "${d.name}" in ${name}`);
    const inner = srs.nested?.[d.name];
    if (inner && d.children) checkSrsBlock(d.children, inner, d.name);
  }
}

export const DEFAULT_VHOST = '__defaultVhost__';

/**
 * SRS's environment overrides: the directive path upper-cased and joined by "_", prefixed
 * "SRS_"; vhost directives drop the vhost name and apply to the default vhost. A non-empty
 * value wins over the file. Returns the names that were applied, for the start-up log.
 */
export function applyEnv(root: Directive[], env: NodeJS.ProcessEnv): string[] {
  const applied: string[] = [];
  const walk = (spec: BlockSpec, path: string[], getBlock: () => Directive[]) => {
    for (const [name, s] of Object.entries(spec.children)) {
      if (s.kind === 'ignored' || (s.kind === 'block' && s.args > 0)) continue;
      const here = [...path, name];
      if (s.kind === 'block') {
        walk(s, here, () => ensureBlock(getBlock(), name));
        continue;
      }
      const key = `SRS_${here.join('_').toUpperCase()}`;
      const value = env[key];
      if (value === undefined || value.trim() === '') continue;
      const list = getBlock();
      const args = value.trim().split(/\s+/);
      const existing = list.filter((d) => d.name === name);
      const d: Directive = { name, args, children: null, file: `env ${key}`, line: 0 };
      if (existing.length === 0) list.push(d);
      else {
        list.splice(list.indexOf(existing[0]), 1, d);
        for (const extra of existing.slice(1)) list.splice(list.indexOf(extra), 1);
      }
      applied.push(key);
    }
  };
  walk(ROOT_SPEC, [], () => root);
  walk(VHOST_SPEC, ['vhost'], () => defaultVhost(root));
  return applied;
}

function ensureBlock(list: Directive[], name: string): Directive[] {
  let d = list.find((x) => x.name === name && x.children);
  if (!d) {
    d = { name, args: [], children: [], file: 'env', line: 0 };
    list.push(d);
  }
  return d.children!;
}

function defaultVhost(root: Directive[]): Directive[] {
  let d = root.find((x) => x.name === 'vhost' && x.args[0] === DEFAULT_VHOST);
  if (!d) {
    d = { name: 'vhost', args: [DEFAULT_VHOST], children: [], file: 'env', line: 0 };
    root.push(d);
  }
  return d.children!;
}
