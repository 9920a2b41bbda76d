/**
 * Shutdown hooks. Components register what must happen before exit (stop
 * accepting, flush usage, close pools); hooks run in phases so that flushes
 * happen after in-flight requests drain and before connections close.
 *
 * Before the first phase comes the readiness grace: `/readyz` already says
 * 503 (isShuttingDown) but the listener still serves new requests, because a
 * load balancer keeps sending for a moment after it sees the pod go unready.
 */
import type { Logger } from '../log/logger';

export type ShutdownPhase = 'stopAccepting' | 'drain' | 'flush' | 'close';
const PHASES: ShutdownPhase[] = ['stopAccepting', 'drain', 'flush', 'close'];

/** Where a shutdown stands, for /readyz and logs. */
export type LifecycleState = 'running' | 'grace' | ShutdownPhase | 'stopped';

interface Hook {
  name: string;
  phase: ShutdownPhase;
  run: () => Promise<void> | void;
}

export interface ShutdownOptions {
  /** Milliseconds of readiness grace before the listener stops accepting (0: none). */
  readinessGraceMs?: number;
}

export class Lifecycle {
  private readonly hooks: Hook[] = [];
  private shuttingDown: Promise<void> | undefined;
  private current: LifecycleState = 'running';

  constructor(private readonly log: Logger) {}

  get isShuttingDown(): boolean {
    return this.shuttingDown !== undefined;
  }

  get state(): LifecycleState {
    return this.current;
  }

  onShutdown(name: string, phase: ShutdownPhase, run: () => Promise<void> | void): void {
    this.hooks.push({ name, phase, run });
  }

  /** Runs every hook once, phase by phase; later hooks of a phase run in reverse registration order. */
  shutdown(reason: string, options: ShutdownOptions = {}): Promise<void> {
    this.shuttingDown ??= (async () => {
      const graceMs = options.readinessGraceMs ?? 0;
      this.log.info({ reason, readinessGraceMs: graceMs }, 'shutting down: readiness off');
      if (graceMs > 0) {
        this.current = 'grace';
        await new Promise((resolve) => setTimeout(resolve, graceMs));
      }
      for (const phase of PHASES) {
        this.current = phase;
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
      this.current = 'stopped';
      this.log.info('shutdown complete');
    })();
    return this.shuttingDown;
  }
}
