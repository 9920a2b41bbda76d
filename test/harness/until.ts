/**
 * The one wait of the suite. Tests wait for behaviour (a log line, a record,
 * a status), never for a time: `until` polls until the awaited thing is seen
 * and gives up only after a liveness guard sized for a busy machine, naming
 * what it waited for and the last value it saw.
 */
import { inspect } from 'node:util';

/** How long any single wait may take before the test is declared stuck (two busy cores, other suites beside it). */
export const WAIT_TIMEOUT_MS = 60_000;

/**
 * The readiness wait: the slowest honest start is an embedded gateway's first
 * (PGlite initdb plus every migration through the WebAssembly schema engine,
 * then the ONNX models), measured at 34 s with load average 6 on two cores.
 */
export const READY_TIMEOUT_MS = 180_000;

/** A Jest hook or test that starts gateways: the readiness wait plus room for the work around it. */
export const STARTUP_TEST_TIMEOUT_MS = READY_TIMEOUT_MS + 60_000;

export interface UntilOptions<T> {
  /** When a read value counts as arrived (default: anything but undefined, null or false). */
  accept?: (value: T) => boolean;
  /** Liveness guard (default WAIT_TIMEOUT_MS). */
  timeoutMs?: number;
  /** Pause between reads (default 50 ms). */
  everyMs?: number;
  /** Checked before each read: a returned reason ends the wait at once (e.g. the process exited). */
  failIf?: () => string | undefined;
  /** Called with the time waited once the value arrives (a figure to print, never to assert). */
  onArrived?: (waitedMs: number) => void;
}

function describe(value: unknown): string {
  const text = value instanceof Error ? `${value.name}: ${value.message}` : inspect(value, { depth: 4, breakLength: Infinity });
  return text.length > 2000 ? `${text.slice(0, 2000)}…` : text;
}

class ReadStillPending extends Error {}

/** A read that hangs (a starved server, a connection that never answers) must not outlast the guard. */
async function withinGuard<T>(read: Promise<T>, leftMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ReadStillPending()), Math.max(0, leftMs));
  });
  try {
    return await Promise.race([read, guard]);
  } finally {
    clearTimeout(timer);
  }
}

function arrived(value: unknown): boolean {
  return value !== undefined && value !== null && value !== false;
}

/**
 * Reads `read()` until `accept` holds for its value and resolves with that
 * value. A read that throws counts as not yet (the error is the last thing
 * seen). On timeout it rejects with `what` and the last value or error seen.
 */
export function until<T>(what: string, read: () => T | Promise<T>, options?: UntilOptions<T> & { accept?: undefined }): Promise<Exclude<T, undefined | null | false>>;
export function until<T>(what: string, read: () => T | Promise<T>, options: UntilOptions<T>): Promise<T>;
export async function until<T>(what: string, read: () => T | Promise<T>, options: UntilOptions<T> = {}): Promise<T> {
  const timeoutMs = options.timeoutMs ?? WAIT_TIMEOUT_MS;
  const everyMs = options.everyMs ?? 50;
  const accept = options.accept ?? arrived;
  const started = performance.now();
  let last: unknown = '(nothing read yet)';
  let reads = 0;
  for (;;) {
    const reason = options.failIf?.();
    if (reason !== undefined) throw new Error(`gave up waiting for ${what}: ${reason}; last seen: ${describe(last)}`);
    try {
      // The first read always gets a full WAIT_TIMEOUT_MS: a short guard (beforeExpiry near its end) still sees one answer.
      const left = timeoutMs - (performance.now() - started);
      const value = await withinGuard(Promise.resolve().then(read), reads === 0 ? Math.max(left, WAIT_TIMEOUT_MS) : left);
      reads += 1;
      last = value;
      if (accept(value)) {
        options.onArrived?.(performance.now() - started);
        return value;
      }
    } catch (error) {
      if (error instanceof ReadStillPending) {
        throw new Error(`timed out after ${Math.round(performance.now() - started)} ms (${reads} reads, the last still unanswered) waiting for ${what}; last seen: ${describe(last)}`);
      }
      reads += 1;
      last = error;
    }
    const waited = performance.now() - started;
    if (waited > timeoutMs) throw new Error(`timed out after ${Math.round(waited)} ms (${reads} reads) waiting for ${what}; last seen: ${describe(last)}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/**
 * The wait left before a cache entry made at `cachedAtMs` (a Date.now()
 * reading) expires after `ttlMs`, less a margin: the bound for a wait that
 * must be won by a broadcast, since past expiry a reread alone would win it.
 * Its size comes from the cache, not from a speed budget.
 */
export function beforeExpiry(cachedAtMs: number, ttlMs: number, marginMs = 250): number {
  return Math.max(1, cachedAtMs + ttlMs - marginMs - Date.now());
}
