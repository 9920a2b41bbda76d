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
import cluster from 'node:cluster';
import { ConfigError, loadConfig, type Config } from './config';
import { createGateway } from './server/app';
import { runPrimary, SHUTDOWN_MESSAGE, type ShutdownMessage } from './server/cluster';
import { createLogger } from './log/logger';

import { DataDirLockedError } from './db/data-dir-lock';

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
  if (config.processes > 1 && cluster.isPrimary) {
    await runPrimary(config, createLogger({ level: config.logLevel, pretty: config.logPretty }).child({ component: 'primary' }));
    return;
  }
  const gateway = await createGateway(config);
  const log = gateway.services.log;
  if (config.listenWhenReady) await gateway.untilReady();
  const address = await gateway.listen();
  log.info({ address, database: config.database.mode, redis: config.redis ? 'redis' : 'in-process' }, `modelgate listening on ${address}`);

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      const pending = gateway.pendingWork();
      log.warn(
        { signal, ...pending },
        `second signal: exiting now, abandoning ${pending.inFlightRequests} in-flight request(s) and ${pending.unwrittenUsageRecords} usage record(s) not yet durable (those in the write-ahead log are replayed at the next start)`,
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
  if (cluster.isWorker) {
    // The primary relays every signal it gets; a terminal's Ctrl-C reaches the
    // whole process group, and taking it here too would count as a second signal.
    process.on('SIGINT', () => undefined);
    process.on('message', (message: ShutdownMessage) => {
      if (message?.type === SHUTDOWN_MESSAGE) onSignal(message.signal);
    });
    // The primary is gone (killed): nobody will relay a signal or replace us.
    process.on('disconnect', () => {
      if (signals === 0) onSignal('SIGTERM');
    });
  } else {
    process.on('SIGINT', onSignal);
  }
  process.on('unhandledRejection', (reason) => log.error({ err: reason }, 'unhandled promise rejection'));
}

main().catch((error: unknown) => {
  // A held DATA_DIR is an operator's situation, not a bug: the message says what to do, a stack would not.
  const detail = error instanceof DataDirLockedError ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error);
  process.stderr.write(`modelgate: failed to start: ${detail}\n`);
  process.exit(1);
});
