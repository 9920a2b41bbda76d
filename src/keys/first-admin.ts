/**
 * The first five minutes: on a database that never had an admin key, the
 * gateway creates one at start and prints it once on stderr, so a newcomer
 * goes from `npm start` to a first request without the CLI (which cannot
 * open an embedded DATA_DIR while the gateway holds it). The key is written
 * to stderr directly, never through the logger: log lines are shipped and
 * kept, and the logger masks key-shaped strings anyway.
 */
import type { Config } from '../config';
import type { Database } from '../db/database';
import type { Readiness } from '../health/readiness';
import type { Logger } from '../log/logger';
import type { CreatedKey, KeyService } from './key.service';

export interface FirstAdminDeps {
  config: Config;
  db: Database;
  keys: KeyService;
  readiness: Readiness;
  log: Logger;
  /** Where the one-time key goes (stderr). */
  write?: (text: string) => void;
}

const RETRY_MS = 1000;

/** Registers a required readiness component, so /readyz turns 200 only after the key (if any) was printed. */
export function bootstrapFirstAdminOnStart(deps: FirstAdminDeps): void {
  const { config, db, keys, readiness, log } = deps;
  const write = deps.write ?? ((text: string) => process.stderr.write(text));
  let state: { done: boolean; created: boolean; error?: string } = { done: false, created: false };
  readiness.register('bootstrap', () => ({ ready: state.done, detail: { created: state.created, ...(state.error ? { error: state.error } : {}) } }));
  const attempt = async (): Promise<void> => {
    for (;;) {
      await db.whenReady();
      try {
        const created = await keys.bootstrapFirstAdmin({ principal: null, actor: 'gateway:first-start' }, config.bootstrap.key ? { plaintext: config.bootstrap.key } : {});
        if (created) {
          log.info({ keyId: created.apiKey.id, prefix: created.apiKey.prefix, fromEnvironment: Boolean(config.bootstrap.key) }, 'first admin key created (tenant "admin")');
          if (!config.bootstrap.key) write(frame(created, config));
        }
        state = { done: true, created: Boolean(created) };
        return;
      } catch (error) {
        // A database blip between "ready" and the insert: try again rather than serve without an admin.
        state = { done: false, created: false, error: error instanceof Error ? error.message : String(error) };
        log.warn({ err: error, retryInMs: RETRY_MS }, 'first admin key: bootstrap failed, retrying');
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS).unref());
      }
    }
  };
  void attempt();
}

function frame(created: CreatedKey, config: Config): string {
  const rule = '='.repeat(78);
  const where = config.database.mode === 'postgres' ? 'the PostgreSQL database (DATABASE_URL)' : `the embedded database in ${config.database.dataDir}`;
  return [
    '',
    rule,
    ' modelgate: first start, no admin key existed, so one was created.',
    ` Stored (hashed) in ${where}. It is shown ONLY ONCE, now:`,
    '',
    `   ${created.plaintext}`,
    '',
    ' Use it as "Authorization: Bearer <key>". It has the admin scope: make',
    ' narrower keys with it (createApiKey, or `modelgate keys create`).',
    ' Set MODELGATE_BOOTSTRAP_KEY to choose the key yourself, BOOTSTRAP_ADMIN=false to skip this.',
    rule,
    '',
    '',
  ].join('\n');
}
