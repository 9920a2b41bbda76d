/**
 * Which target a command talks to, decided once from the command line and
 * the environment, and never ambiguous: a running gateway (remote: --url or
 * MODELGATE_URL, with the admin key from MODELGATE_ADMIN_KEY or
 * --admin-key-file) or a database (direct: --database-url / DATABASE_URL, or
 * an embedded --data-dir / DATA_DIR). Naming both kinds at the same level (two
 * options, or two variables) is a usage error; an option beats a variable of
 * the other kind. With nothing named, the embedded ./.data is used only if it
 * already holds a database, and the target line says that it is a default.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { loadCliTargetEnv, loadConfig, type Config } from '../config';
import { displayPrefix, isWellFormedKey } from '../ids/key-format';
import { CliError, EXIT, UsageError } from './exit';

export interface TargetOptions {
  url?: string;
  adminKeyFile?: string;
  databaseUrl?: string;
  dataDir?: string;
}

export interface RemoteTarget {
  kind: 'remote';
  /** The gateway's /graphql endpoint. */
  endpoint: string;
  /** "gateway http://host:4000": for messages, no credentials. */
  name: string;
  adminKey: string;
  /** Where the key came from, for messages: MODELGATE_ADMIN_KEY or --admin-key-file <file>. */
  keySource: string;
  /** "mg_live_AbC4dE5f…": the key's display prefix, never more. */
  keyLabel: string;
  line: string;
}

export interface DirectTarget {
  kind: 'direct';
  config: Config;
  name: string;
  line: string;
}

export type Target = RemoteTarget | DirectTarget;

/** A URL with any password replaced by *** (and the rest as given). */
export function redactUrl(raw: string): string {
  try {
    const u = new URL(raw);
    if (u.password) u.password = '***';
    return u.toString().replace(/\/$/, '');
  } catch {
    return '(unparsable URL)';
  }
}

function remoteTarget(rawUrl: string, options: TargetOptions, adminKeyFromEnv: string | null): RemoteTarget {
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    throw new UsageError(`--url / MODELGATE_URL must be a gateway URL such as http://127.0.0.1:4000 (got an unparsable value)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--url / MODELGATE_URL must start with http:// or https:// (got ${url.protocol}//)`);
  const base = new URL(url.toString());
  base.username = '';
  base.password = '';
  base.search = '';
  base.hash = '';
  const shown = base.toString().replace(/\/$/, '');
  const endpoint = /\/graphql\/?$/.test(base.pathname) ? shown : `${shown}/graphql`;
  const name = `gateway ${shown}`;
  let adminKey = adminKeyFromEnv;
  let source = 'MODELGATE_ADMIN_KEY';
  if (options.adminKeyFile !== undefined) {
    source = `--admin-key-file ${options.adminKeyFile}`;
    try {
      adminKey = readFileSync(options.adminKeyFile, 'utf8').trim();
    } catch (error) {
      throw new UsageError(`cannot read --admin-key-file ${options.adminKeyFile}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
  }
  const keyLabel = adminKey ? (isWellFormedKey(adminKey) ? `${displayPrefix(adminKey)}…` : 'not a modelgate key') : 'none';
  const line = `modelgate: ${name} (remote, key ${keyLabel})`;
  return { kind: 'remote', endpoint, name, adminKey: adminKey ?? '', keySource: source, keyLabel, line };
}

/** Refuses a remote target without a usable admin key (exit 5), after its line was printed. */
export function requireAdminKey(target: RemoteTarget): void {
  if (!target.adminKey) {
    throw new CliError(
      EXIT.KEY_REFUSED,
      `${target.keySource === 'MODELGATE_ADMIN_KEY' ? 'MODELGATE_ADMIN_KEY is not set' : `${target.keySource} is empty`}; a gateway needs an admin key: set MODELGATE_ADMIN_KEY or pass --admin-key-file <file> (a key is never an option value: it would land in shell history and ps)`,
    );
  }
  if (!isWellFormedKey(target.adminKey)) throw new CliError(EXIT.KEY_REFUSED, `${target.keySource} is not a modelgate key (mg_live_… or mg_test_… with a valid checksum)`);
}

function directTarget(options: TargetOptions, env: NodeJS.ProcessEnv, cwd: string): DirectTarget {
  const named = Boolean(options.databaseUrl) || Boolean(options.dataDir) || Boolean(env['DATABASE_URL']?.trim()) || Boolean(env['DATA_DIR']?.trim());
  const overrides: NodeJS.ProcessEnv = { ...env };
  if (options.databaseUrl) overrides['DATABASE_URL'] = options.databaseUrl;
  if (options.dataDir) {
    // --data-dir means the embedded database, even with DATABASE_URL in the environment.
    overrides['DATA_DIR'] = options.dataDir;
    delete overrides['DATABASE_URL'];
  }
  const config = loadConfig(overrides, cwd);
  if (config.database.mode === 'postgres') {
    const name = `database ${redactUrl(config.database.url)}`;
    return { kind: 'direct', config, name, line: `modelgate: ${name} (direct)` };
  }
  const dataDir = path.dirname(config.database.dataDir);
  const name = `embedded data dir ${dataDir}`;
  if (named) return { kind: 'direct', config, name, line: `modelgate: ${name} (direct)` };
  if (!existsSync(config.database.dataDir)) {
    throw new UsageError(
      `no target named: none of --url / MODELGATE_URL (a gateway), DATABASE_URL / --database-url (PostgreSQL) or DATA_DIR / --data-dir (embedded) is set, ` +
        `and there is no embedded database in ${dataDir}. Name one; --data-dir creates an embedded database.`,
    );
  }
  return {
    kind: 'direct',
    config,
    name,
    line: `modelgate: ${name} (direct) — DEFAULT, nothing else named: no --url, MODELGATE_URL, DATABASE_URL or DATA_DIR is set and ${dataDir} already holds a database`,
  };
}

/** Decides the target; throws UsageError when none or two are named, ConfigError for a bad variable. */
export function resolveTarget(options: TargetOptions, env: NodeJS.ProcessEnv, cwd = process.cwd()): Target {
  const cli = loadCliTargetEnv(env);
  const databaseOption = options.databaseUrl ? '--database-url' : options.dataDir ? '--data-dir' : null;
  if (options.databaseUrl && options.dataDir) throw new UsageError('--database-url and --data-dir name two databases; give one');
  if (options.url && databaseOption) throw new UsageError(`--url (a gateway) and ${databaseOption} (a database) name two targets; give one`);
  if (options.url) return remoteTarget(options.url, options, cli.adminKey);
  if (databaseOption) return directTarget(options, env, cwd);
  if (cli.gatewayUrl && cli.databaseNamed) {
    const db = env['DATABASE_URL']?.trim() ? 'DATABASE_URL' : 'DATA_DIR';
    throw new UsageError(`MODELGATE_URL (a gateway) and ${db} (a database) are both set: choose with --url or --database-url / --data-dir, or unset one`);
  }
  if (cli.gatewayUrl) return remoteTarget(cli.gatewayUrl, options, cli.adminKey);
  if (options.adminKeyFile !== undefined) throw new UsageError('--admin-key-file is for a gateway: give --url or MODELGATE_URL too');
  return directTarget(options, env, cwd);
}
