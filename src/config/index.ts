import { accessSync, constants, statSync } from 'node:fs';
import { parseFile, parseText, ConfigError, type Directive } from './tree.js';
import { applyEnv, validate } from './validate.js';
import { ROOT_SPEC } from './spec.js';
import { buildConfig, type Config } from './schema.js';

export { ConfigError };
export type { Config, ListenAddr, ProxyRoute, VhostConfig, Limits } from './schema.js';
export { DEFAULT_VHOST } from './validate.js';

/**
 * Parse → environment overrides → validate → typed config, once. Throws ConfigError naming
 * file:line and what was expected; nothing reads raw directives after this.
 */
export function loadConfig(file: string | null, env: NodeJS.ProcessEnv = process.env): Config {
  const tree: Directive[] = file ? parseFile(file) : [];
  return finish(tree, file ?? '(defaults)', env);
}

/** The same from text (tests, `-t` on stdin). */
export function loadConfigText(text: string, file: string, env: NodeJS.ProcessEnv = {}): Config {
  return finish(parseText(text, file), file, env);
}

function finish(tree: Directive[], file: string, env: NodeJS.ProcessEnv): Config {
  const notes: string[] = [];
  const warnings: string[] = [];
  const applied = applyEnv(tree, env);
  validate(tree, ROOT_SPEC, 'at top level', (m) => warnings.push(m));
  for (const key of applied) notes.push(`environment override ${key} applied`);
  const config = buildConfig(tree, file, notes, warnings);
  const dir = config.httpServer.enabled ? unreadableDir(config.httpServer.dir) : null;
  if (dir) warnings.push(`http_server.dir ${config.httpServer.dir}: ${dir}; every request that reaches it is answered 404 (403 where a file cannot be read)`);
  return config;
}

/** Why the web root cannot be served (missing, not a directory, no permission), or null. */
function unreadableDir(dir: string): string | null {
  try {
    if (!statSync(dir).isDirectory()) return 'not a directory';
    accessSync(dir, constants.R_OK | constants.X_OK);
    return null;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'not readable by this user' : (err as Error).message;
  }
}
