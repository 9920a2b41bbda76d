/**
 * Shutdown hooks. Components register what must happen before exit (stop
 * accepting, flush usage, close pools); hooks run in phases so that flushes
 * happen after in-flight requests drain and before connections close.
 */
import type { Logger } from '../log/logger';

export type ShutdownPhase = 'stopAccepting' | 'drain' | 'flush' | 'close';
const PHASES: ShutdownPhase[] = ['stopAccepting', 'drain', 'flush', 'close'];

interface Hook {
  name: string;
  phase: ShutdownPhase;
  run: () => Promise<void> | void;
}

export class Lifecycle {
  private readonly hooks: Hook[] = [];
  private shuttingDown: Promise<void> | undefined;

  constructor(private readonly log: Logger) {}

  get isShuttingDown(): boolean {
    return this.shuttingDown !== undefined;
  }

  onShutdown(name: string, phase: ShutdownPhase, run: () => Promise<void> | void): void {
    this.hooks.push({ name, phase, run });
  }

  /** Runs every hook once, phase by phase; later hooks of a phase run in reverse registration order. */
  shutdown(reason: string): Promise<void> {
    this.shuttingDown ??= (async () => {
      this.log.info({ reason }, 'shutting down');
      for (const phase of PHASES) {
        const hooks = this.hooks.filter((h) => h.phase === phase).reverse();
        for (const hook of hooks) {
          const started = Date.now();
          try {
            await hook.run();
            this.log.debug({ hook: hook.name, phase, ms: Date.now() - started }, 'shutdown hook done');
          } catch (error) {
            this.log.error({ err: error, hook: hook.name, phase }, 'shutdown hook failed');
          }
        }
      }
      this.log.info('shutdown complete');
    })();
    return this.shuttingDown;
  }
}
