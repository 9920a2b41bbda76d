/**
 * GATEWAY_PROCESSES > 1: one primary and N gateway processes (node:cluster)
 * sharing one port, so a many-core host is not capped by one event loop.
 * Each process is a full stateless replica (limits and revocations already
 * hold across replicas through Redis and Postgres). The primary runs the
 * migrations once, gives each process its own usage spool, replaces a process
 * that dies, and on SIGTERM/SIGINT passes the signal on and exits when all
 * have finished their own graceful shutdown (0 only if every one exited 0).
 */
import cluster, { type Worker } from 'node:cluster';
import path from 'node:path';
import type { Config } from '../config';
import type { Logger } from '../log/logger';
import { applyMigrations } from '../db/migrate';

export const SHUTDOWN_MESSAGE = 'modelgate:shutdown';
export interface ShutdownMessage {
  type: typeof SHUTDOWN_MESSAGE;
  signal: NodeJS.Signals;
}

/** A process that dies this soon after starting is restarted after a pause, not at once. */
const CRASH_LOOP_MS = 5_000;
const RESTART_PAUSE_MS = 2_000;

export async function runPrimary(config: Config, log: Logger): Promise<void> {
  if (config.database.mode !== 'postgres') throw new Error('cluster mode needs DATABASE_URL');
  if (config.migrateOnStart) await migrateWithRetry(config.database.directUrl ?? config.database.url, config.databaseConnectRetryMaxMs, log);

  const slots = new Map<number, { worker: Worker; startedAt: number }>();
  let stopping: NodeJS.Signals | null = null;
  let failedExits = 0;

  const fork = (slot: number, replacement: boolean) => {
    const worker = cluster.fork({
      MIGRATE_ON_START: 'false',
      // The others serve the port meanwhile; connections given to a process still loading models would fail.
      GATEWAY_LISTEN_WHEN_READY: replacement ? 'true' : 'false',
      // Each process owns its spool; a replacement for the same slot replays what its predecessor left.
      USAGE_SPOOL_DIR: path.join(config.usage.spoolDir, `process-${slot}`),
    });
    slots.set(slot, { worker, startedAt: Date.now() });
    worker.on('exit', (code, signal) => {
      const entry = slots.get(slot);
      if (entry?.worker !== worker) return;
      slots.delete(slot);
      if (stopping) {
        if (code !== 0) failedExits += 1;
        if (slots.size === 0) {
          log.info({ failedExits }, 'all gateway processes stopped');
          process.exit(failedExits === 0 ? 0 : 1);
        }
        return;
      }
      const quick = Date.now() - (entry?.startedAt ?? 0) < CRASH_LOOP_MS;
      log.error({ slot, pid: worker.process.pid, code, signal }, `gateway process exited; starting a replacement${quick ? ` in ${RESTART_PAUSE_MS} ms` : ''}`);
      setTimeout(() => {
        if (!stopping) fork(slot, true);
      }, quick ? RESTART_PAUSE_MS : 0);
    });
  };
  for (let slot = 0; slot < config.processes; slot += 1) fork(slot, false);
  log.info({ processes: config.processes, inferenceWorkersPerProcess: config.models.workers, port: config.port }, `modelgate primary started ${config.processes} gateway processes`);

  const onSignal = (signal: NodeJS.Signals) => {
    const second = stopping !== null;
    stopping = signal;
    log.info({ signal, processes: slots.size, second }, second ? 'second signal: passing it on (processes exit at once)' : 'passing the signal to every gateway process');
    const message: ShutdownMessage = { type: SHUTDOWN_MESSAGE, signal };
    for (const { worker } of slots.values()) if (worker.isConnected()) worker.send(message);
    if (slots.size === 0) process.exit(0);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

async function migrateWithRetry(url: string, retryMaxMs: number, log: Logger): Promise<void> {
  let delay = 250;
  for (;;) {
    try {
      const applied = await applyMigrations({ kind: 'postgres', url });
      if (applied.length > 0) log.info({ applied }, 'migrations applied');
      return;
    } catch (error) {
      log.warn({ err: error, retryInMs: delay }, 'migrations: database unavailable, retrying');
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, retryMaxMs);
    }
  }
}
