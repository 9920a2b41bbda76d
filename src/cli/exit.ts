/**
 * The CLI's exit codes (README "CLI") and the errors that carry them. One
 * table maps the gateway's error codes (src/errors) to exit codes, for the
 * direct mode's domain errors and the remote mode's GraphQL errors alike, so
 * a refusal exits the same way whichever target refused it.
 */
import { ConfigError } from '../config';
import { DataDirLockedError } from '../db/data-dir-lock';
import { DurationError } from './duration';

export const EXIT = {
  OK: 0,
  /** The target refused the operation: unknown tenant or key, a name already taken, a value it does not accept. */
  REFUSED: 1,
  /** The command line or the configuration is wrong, or names no target or two. */
  USAGE: 2,
  /** Nothing to do: `admin bootstrap` found an admin key. */
  NOTHING_DONE: 3,
  /** The target could not be reached within --timeout (or cannot serve now: retry), or the embedded DATA_DIR is held by a gateway. */
  UNREACHABLE: 4,
  /** Remote: no admin key, or the gateway refused it (unknown, revoked, expired, suspended tenant, missing scope). */
  KEY_REFUSED: 5,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** An error the CLI reports in one line and exits with. */
export class CliError extends Error {
  constructor(
    readonly exitCode: ExitCode,
    message: string,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export class UsageError extends CliError {
  constructor(message: string) {
    super(EXIT.USAGE, message);
  }
}

export class UnreachableError extends CliError {
  constructor(message: string) {
    super(EXIT.UNREACHABLE, message);
  }
}

/** Gateway error codes (src/errors ERROR_CODES and the GraphQL client codes) to exit codes; anything else is REFUSED. */
const EXIT_FOR_CODE: Record<string, ExitCode> = {
  UNAUTHENTICATED: EXIT.KEY_REFUSED,
  FORBIDDEN: EXIT.KEY_REFUSED,
  UNAVAILABLE: EXIT.UNREACHABLE,
  OVERLOADED: EXIT.UNREACHABLE,
  TIMEOUT: EXIT.UNREACHABLE,
  RATE_LIMITED: EXIT.UNREACHABLE,
};

export function exitForErrorCode(code: string): ExitCode {
  return EXIT_FOR_CODE[code] ?? EXIT.REFUSED;
}

/** The exit code for anything a command threw. */
export function exitCodeOf(error: unknown): ExitCode {
  if (error instanceof CliError) return error.exitCode;
  if (error instanceof DurationError || error instanceof ConfigError) return EXIT.USAGE;
  if (error instanceof DataDirLockedError) return EXIT.UNREACHABLE;
  if (isDomainError(error)) return exitForErrorCode(error.code);
  return EXIT.REFUSED;
}

/**
 * src/errors' DomainError, recognised by shape: importing that module loads
 * graphql-js, which a remote command never needs (DomainError sets this name
 * for every subclass).
 */
function isDomainError(error: unknown): error is Error & { code: string } {
  return error instanceof Error && error.name === 'DomainError' && typeof (error as { code?: unknown }).code === 'string';
}
