/**
 * Structured logging (pino). JSON by default; human-readable only when asked
 * (LOG_PRETTY or a TTY). Secrets never reach a log line: auth headers are
 * redacted by path and anything shaped like an API key is masked wherever it
 * appears in a message or an error.
 */
import pino, { type Logger } from 'pino';

export type { Logger } from 'pino';

/** Matches modelgate keys (mg_live_… / mg_test_…) and bearer tokens in free text. */
const KEY_PATTERN = /\bmg_(live|test)_[A-Za-z0-9]{8,}/g;
const BEARER_PATTERN = /(bearer\s+)[^\s"',]+/gi;

export function scrubSecrets(text: string): string {
  return text.replace(KEY_PATTERN, 'mg_$1_[REDACTED]').replace(BEARER_PATTERN, '$1[REDACTED]');
}

const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers.cookie',
  'headers.authorization',
  'headers["x-api-key"]',
  'authorization',
  'apiKey',
  'plaintext',
  'secret',
  'password',
  '*.authorization',
  '*.apiKey',
  '*.plaintext',
  '*.secret',
  '*.password',
];

function scrubError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const serialized = pino.stdSerializers.err(err);
  serialized.message = scrubSecrets(serialized.message);
  if (serialized.stack) serialized.stack = scrubSecrets(serialized.stack);
  return serialized;
}

export interface LoggerOptions {
  level: string;
  pretty: boolean;
  /** Where to write (tests capture logs through this). */
  destination?: pino.DestinationStream;
}

export function createLogger(options: LoggerOptions): Logger {
  const base: pino.LoggerOptions = {
    level: options.level,
    // pid tells the processes of one host (GATEWAY_PROCESSES) apart.
    base: { service: 'modelgate', pid: process.pid },
    redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
    serializers: { err: scrubError, error: scrubError },
    hooks: {
      // Masks key-shaped strings in the message arguments themselves.
      logMethod(args, method) {
        const cleaned = args.map((a) => (typeof a === 'string' ? scrubSecrets(a) : a)) as Parameters<typeof method>;
        method.apply(this, cleaned);
      },
    },
  };
  if (options.destination) return pino(base, options.destination);
  if (options.pretty) {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l' } } });
  }
  return pino(base);
}
