/**
 * `npm start`: loads configuration (exits with a named error when it is
 * wrong), starts one gateway and shuts it down gracefully on SIGTERM/SIGINT.
 *
 * SIGTERM (an orchestrator's stop) gets the readiness grace first; SIGINT
 * (Ctrl-C at a terminal) skips it. A second signal exits at once and says
 * what it abandons. The whole shutdown is bounded: grace + drain timeout +
 * a margin for flushing, then the process exits even if a hook hangs.
 */
import 'reflect-metadata';
import { ConfigError, loadConfig, type Config } from './config';
import { createGateway } from './server/app';

/** Time allowed after the drain for flushing usage and closing connections. */
const FLUSH_AND_CLOSE_MARGIN_MS = 15_000;

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
      const pending = gateway.pendingWork();
      log.warn(
        { signal, ...pending },
        `second signal: exiting now, abandoning ${pending.inFlightRequests} in-flight request(s) and ${pending.unwrittenUsageRecords} usage record(s) not yet written`,
      );
      process.exit(1);
    }
    const readinessGraceMs = signal === 'SIGTERM' ? config.shutdownReadinessGraceMs : 0;
    const boundMs = readinessGraceMs + config.shutdownDrainTimeoutMs + FLUSH_AND_CLOSE_MARGIN_MS;
    setTimeout(() => {
      log.error({ boundMs, ...gateway.pendingWork() }, 'shutdown did not finish in time: exiting');
      process.exit(1);
    }, boundMs).unref();
    gateway
      .close(signal, { readinessGraceMs })
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
  process.stderr.write(`modelgate: failed to start: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
