import { ConfigError, loadConfig } from './config/index.js';
import { Gateway } from './gateway.js';
import { Logger } from './log.js';
import { BindError } from './net/listeners.js';
import { VERSION } from './version.js';

const USAGE = `streamgate ${VERSION}: a Koa gateway and live-stream origin configured like SRS

usage: streamgate [-c FILE] [-t] [-v] [-h]
  -c FILE   config file in SRS's format (default: built-in defaults, as config/streamgate.conf)
  -t        test the config file and exit (0 when ok, 1 with file:line and what was expected)
  -v        print the version and exit

signals: SIGTERM/SIGINT drain and exit (a second one exits at once); SIGHUP reloads the config; SIGUSR1 reopens the access log file.`;

interface Args {
  config: string | null;
  test: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { config: null, test: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-c') {
      const f = argv[++i];
      if (!f) fail('-c needs a file');
      args.config = f;
    } else if (a === '-t') {
      args.test = true;
    } else if (a === '-v' || a === '--version') {
      process.stdout.write(`${VERSION}\n`);
      process.exit(0);
    } else if (a === '-h' || a === '--help') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else {
      fail(`unknown argument "${a}"\n\n${USAGE}`);
    }
  }
  return args;
}

function fail(msg: string): never {
  process.stderr.write(`streamgate: ${msg}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const name = args.config ?? '(built-in defaults)';
  let config;
  try {
    config = loadConfig(args.config);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`streamgate: ${err.message}\n`);
      if (args.test) process.stderr.write(`streamgate: config file ${name} test failed\n`);
      process.exit(1);
    }
    throw err;
  }
  if (args.test) {
    // SRS's wording, so scripts written for `srs -t` read ours the same way.
    for (const w of config.warnings) process.stdout.write(`streamgate: [warn] ${w}\n`);
    for (const n of config.notes) process.stdout.write(`streamgate: ${n}\n`);
    process.stdout.write(`streamgate: the config file ${name} syntax is ok\n`);
    process.stdout.write(`streamgate: config file ${name} test is successful\n`);
    process.exit(0);
  }

  const log = new Logger();
  let gw: Gateway | undefined;
  // logrotate's postrotate sends USR1, as to NGINX: the access log is opened again by its name.
  // Installed before anything listens: without a listener, Node answers USR1 by opening its inspector.
  process.on('SIGUSR1', () => gw?.reopenLogs());
  try {
    gw = await Gateway.start(config, { log });
  } catch (err) {
    if (err instanceof BindError || err instanceof ConfigError) fail(err.message);
    fail((err as Error).message ?? String(err));
  }
  log.info(`streamgate ${VERSION} started with ${name}, pid ${process.pid}`);

  let stopping = false;
  const stop = (sig: string) => {
    if (stopping) {
      log.warn(`${sig} again: exiting now`);
      log.flush();
      process.exit(1);
    }
    stopping = true;
    log.info(`${sig}: draining (send it again to exit at once)`);
    gw.close().then(
      () => process.exit(0),
      (err) => fail(`shutdown failed: ${(err as Error).message}`),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    if (!args.config) {
      log.info('SIGHUP: no config file to reload (started on built-in defaults)');
      return;
    }
    try {
      const next = loadConfig(args.config);
      gw.reload(next).catch((err) => log.error(`reload failed, keeping the running config: ${(err as Error).message}`));
    } catch (err) {
      log.error(`reload failed, keeping the running config: ${(err as Error).message}`);
    }
  });
}

main().catch((err) => fail((err as Error)?.stack ?? String(err)));
