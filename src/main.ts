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
import { createGateway } from './app/gateway';
import { runPrimary, SHUTDOWN_MESSAGE, type ShutdownMessage } from './app/cluster';
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
  // Signals (and the primary's relayed ones) are taken from the first moment: one
  // that arrives while the gateway is still starting is kept and acted on once it
  // exists, instead of killing the process or, relayed, being lost.
  let handle: (signal: NodeJS.Signals) => void;
  let early: NodeJS.Signals | null = null;
  handle = (signal) => {
    early ??= signal;
  };
  let signals = 0;
  process.on('SIGTERM', (signal: NodeJS.Signals) => handle(signal));
  if (cluster.isWorker) {
    // The primary relays every signal it gets; a terminal's Ctrl-C reaches the
    // whole process group, and taking it here too would count as a second signal.
    process.on('SIGINT', () => undefined);
    process.on('message', (message: ShutdownMessage) => {
      if (message?.type === SHUTDOWN_MESSAGE) handle(message.signal);
    });
    // The primary is gone (killed): nobody will relay a signal or replace us.
    process.on('disconnect', () => {
      if (signals === 0) handle('SIGTERM');
    });
  } else {
    process.on('SIGINT', (signal: NodeJS.Signals) => handle(signal));
  }

  const gateway = await createGateway(config);
  const log = gateway.services.log;
  process.on('unhandledRejection', (reason) => log.error({ err: reason }, 'unhandled promise rejection'));

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
  handle = onSignal;
  if (early) {
    // Stopped before it took a single request: shut down now rather than start serving.
    onSignal(early);
    return;
  }
  if (config.listenWhenReady) await gateway.untilReady();
  if (signals > 0) return;
  const address = await gateway.listen();
  log.info({ address, database: config.database.mode, redis: config.redis ? 'redis' : 'in-process' }, `modelgate listening on ${address}`);
}

main().catch((error: unknown) => {
  // A held DATA_DIR is an operator's situation, not a bug: the message says what to do, a stack would not.
  const detail = error instanceof DataDirLockedError ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error);
  process.stderr.write(`modelgate: failed to start: ${detail}\n`);
  process.exit(1);
});
