/**
 * `npm start`: loads configuration (exits with a named error when it is
 * wrong), starts one gateway and shuts it down gracefully on SIGTERM/SIGINT.
 */
import 'reflect-metadata';
import { ConfigError, loadConfig, type Config } from './config';
import { createGateway } from './server/app';
import { DataDirLockedError } from './db/data-dir-lock';

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`modelgate: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const gateway = await createGateway(config);
  const log = gateway.services.log;
  const address = await gateway.listen();
  log.info({ address, database: config.database.mode, redis: config.redis ? 'redis' : 'in-process' }, `modelgate listening on ${address}`);

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    gateway
      .close(signal)
      .then(() => process.exit(0))
      .catch((error: unknown) => {
        log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('unhandledRejection', (reason) => log.error({ err: reason }, 'unhandled promise rejection'));
}

main().catch((error: unknown) => {
  // A held DATA_DIR is an operator's situation, not a bug: the message says what to do, a stack would not.
  const detail = error instanceof DataDirLockedError ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error);
  process.stderr.write(`modelgate: failed to start: ${detail}\n`);
  process.exit(1);
});
