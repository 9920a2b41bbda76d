/**
 * Structured logging (pino). JSON by default; human-readable only when asked
 * (LOG_PRETTY or a TTY). Secrets never reach a log line: auth headers are
 * redacted by path and anything shaped like an API key is masked wherever it
 * appears in a message or an error.
 */
import pino, { type Logger } from 'pino';
import type { FastifyBaseLogger } from 'fastify';

export type { Logger } from 'pino';

/** Matches modelgate keys (mg_live_… / mg_test_…) and bearer tokens in free text. */
const KEY_PATTERN = /mg_(live|test)_[A-Za-z0-9]{8,}/g;
const BEARER_PATTERN = /(bearer\s+)[^\s"',]+/gi;
/** Either pattern's start: one scan answers the common case (nothing to mask) without two replaces. */
const MAYBE_SECRET = /mg_(?:live|test)_|bearer\s/i;

export function scrubSecrets(text: string): string {
  if (!MAYBE_SECRET.test(text)) return text;
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

/**
 * Every string of a log line's own fields, at any depth (bounded), through
 * scrubSecrets: a key in a URL, a header echoed into a field, a request id.
 * Objects are copied only where a string changed.
 */
export function scrubFields<T>(value: T, depth = 0): T {
  if (typeof value === 'string') return scrubSecrets(value) as T;
  if (depth > 6 || value === null || typeof value !== 'object' || value instanceof Error || Buffer.isBuffer(value)) return value;
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    value.forEach((v, i) => {
      const s = scrubFields(v, depth + 1);
      if (s !== v) (out ??= [...value])[i] = s;
    });
    return (out ?? value) as T;
  }
  let out: Record<string, unknown> | undefined;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const s = scrubFields(v, depth + 1);
    if (s !== v) (out ??= { ...(value as Record<string, unknown>) })[k] = s;
  }
  return (out ?? value) as T;
}

function scrubError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const serialized = pino.stdSerializers.err(err);
  serialized.message = scrubSecrets(serialized.message);
  if (serialized.stack) serialized.stack = scrubSecrets(serialized.stack);
  return serialized;
}

/**
 * A request's logger as the pino Logger it is: fastify makes request.log a
 * child of the logger createLogger built (carrying the request id, and the
 * trace ids once tracing adds them), but types it as its own
 * FastifyBaseLogger, whose generics differ. The one place that cast is made.
 */
export function requestLogger(request: { log: FastifyBaseLogger }): Logger {
  return request.log as unknown as Logger;
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
    // Every field, not only the message: a key may sit in a URL, a header value or a child's bindings.
    formatters: { log: (object) => scrubFields(object) },
    hooks: {
      // Masks key-shaped strings in the message arguments themselves.
      logMethod(args, method) {
        const cleaned = args.map((a) => (typeof a === 'string' ? scrubSecrets(a) : a)) as Parameters<typeof method>;
        method.apply(this, cleaned);
      },
    },
  };
  let root: Logger;
  if (options.destination) root = pino(base, options.destination);
  else if (options.pretty) root = pino({ ...base, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l' } } });
  else root = pino(base);
  return withUniqueBindings(root);
}

/**
 * pino appends a child's bindings to its parent's as text, so a child of a
 * child that both set `component` writes the key twice in one line, which
 * strict JSON parsers reject. Children inherit this override through their
 * prototype; one that repeats a parent's key is made from the root instead,
 * with the parent's bindings merged in (`component` becomes "parent.child",
 * other keys take the child's value, except the root's service and pid). A child adding only new keys (fastify's
 * per-request child) takes pino's own path.
 */
type ChildFn = (this: Logger, bindings: pino.Bindings, options?: pino.ChildLoggerOptions) => Logger;

function withUniqueBindings(root: Logger): Logger {
  // pino's generics over custom levels do not survive a plain function type; the call is the same.
  const pinoChild = root.child as unknown as ChildFn;
  const rootKeys = new Set(Object.keys(root.bindings()));
  // The binding keys of every logger made here (its own, and its parent's entry), so a child (one
  // or two per request: fastify's request logger, the trace ids) is checked for a repeated key
  // without pino's bindings(), which parses the parent's serialized bindings back from JSON.
  interface Keys {
    own: readonly string[];
    parent: Keys | null;
  }
  const keysOf = new WeakMap<Logger, Keys>();
  keysOf.set(root, { own: [], parent: null });
  const keysFor = (logger: Logger): Keys => {
    let keys = keysOf.get(logger);
    if (!keys) {
      keys = { own: Object.keys(logger.bindings()).filter((k) => !rootKeys.has(k)), parent: null };
      keysOf.set(logger, keys);
    }
    return keys;
  };
  const repeats = (keys: readonly string[], chain: Keys | null): boolean => {
    for (const k of keys) {
      if (rootKeys.has(k)) return true;
      for (let at = chain; at; at = at.parent) if (at.own.includes(k)) return true;
    }
    return false;
  };
  const child = function (this: Logger, raw: pino.Bindings, childOptions?: pino.ChildLoggerOptions) {
    // pino does not pass a child's bindings through formatters.bindings: scrubbed here (a request id, a URL).
    const bindings = scrubFields(raw);
    const parent = keysFor(this);
    const keys = Object.keys(bindings);
    if (!repeats(keys, parent)) {
      const made = pinoChild.call(this, bindings, childOptions);
      keysOf.set(made, { own: keys, parent });
      return made;
    }
    const own = this === root ? {} : this.bindings();
    const merged: pino.Bindings = { ...own, ...bindings };
    if (typeof own['component'] === 'string' && typeof bindings['component'] === 'string') merged['component'] = `${own['component']}.${bindings['component']}`;
    // The root's own keys (service, pid) name the process and are already in its part of each line.
    for (const k of rootKeys) delete merged[k];
    const made = pinoChild.call(root, merged, childOptions);
    if (childOptions?.level === undefined) made.level = this.level;
    keysOf.set(made, { own: Object.keys(merged), parent: null });
    return made;
  };
  (root as unknown as { child: ChildFn }).child = child;
  return root;
}

/**
 * A child logger made only when it first writes a line.
 *
 * Every request gets a child (fastify's, with the request id) and a child of
 * that (the trace ids), and almost none logs a line: pino serializes and
 * redacts a child's bindings when it is made, which was ~4 % of the event
 * loop's time at saturation (bench/PROFILE.md, stop 35). A deferred child keeps
 * its parent and bindings, answers level questions from the nearest logger that
 * exists, and makes the real child (through the parent's `child`, so the
 * repeated-key rule and the scrubbing still apply) on the first line it writes,
 * or on anything that needs the real one (`bindings`, `setBindings`, setting
 * `level`, a child with options).
 *
 * It inherits from its nearest real ancestor, so a member not handled here
 * (`flush`, `levels`, the event emitter) is the ancestor's, which shares the
 * destination and, until a level is set on the child, the level.
 */
const DEFERRED = Symbol('modelgate.deferredChild');

interface DeferredState {
  readonly parent: Logger;
  readonly bindings: pino.Bindings;
  real: Logger | undefined;
}

type Deferred = Logger & { [DEFERRED]: DeferredState };

const LOG_METHODS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;

function stateOf(logger: Logger): DeferredState | undefined {
  return Object.prototype.hasOwnProperty.call(logger, DEFERRED) ? (logger as Deferred)[DEFERRED] : undefined;
}

/** The real logger behind `logger`, made (with its deferred ancestors) if it does not exist yet. */
function materialize(logger: Logger): Logger {
  const state = stateOf(logger);
  if (!state) return logger;
  return (state.real ??= materialize(state.parent).child(state.bindings));
}

/** The logger whose level a deferred child has: its real child once made, else its parent's. */
function levelHolder(logger: Logger): Logger {
  let state = stateOf(logger);
  while (state && !state.real) {
    logger = state.parent;
    state = stateOf(logger);
  }
  return state?.real ?? logger;
}

/** One prototype per real ancestor: the deferred children of a logger share their methods. */
const deferredPrototypes = new WeakMap<Logger, object>();

function deferredPrototype(ancestor: Logger): object {
  let proto = deferredPrototypes.get(ancestor);
  if (proto) return proto;
  const methods: PropertyDescriptorMap = {
    child: {
      value(this: Logger, bindings: pino.Bindings, options?: pino.ChildLoggerOptions): Logger {
        return deferredChild(this, bindings, options);
      },
    },
    bindings: { value: function (this: Logger) { return materialize(this).bindings(); } },
    setBindings: { value: function (this: Logger, bindings: pino.Bindings) { materialize(this).setBindings(bindings); } },
    isLevelEnabled: { value: function (this: Logger, level: string) { return levelHolder(this).isLevelEnabled(level); } },
    level: {
      get(this: Logger) { return levelHolder(this).level; },
      set(this: Logger, level: string) { materialize(this).level = level; },
    },
    levelVal: { get(this: Logger) { return levelHolder(this).levelVal; } },
    silent: { value: function () { /* the silent level writes nothing */ } },
  };
  for (const method of LOG_METHODS) {
    methods[method] = {
      value: function (this: Logger, ...args: unknown[]) {
        // A line below the level makes nothing: the real child would drop it too.
        if (!levelHolder(this).isLevelEnabled(method)) return;
        (materialize(this)[method] as (...a: unknown[]) => void)(...args);
      },
    };
  }
  proto = Object.create(ancestor, methods) as object;
  deferredPrototypes.set(ancestor, proto);
  return proto;
}

/**
 * A child of `parent` with `bindings` that costs nothing until it writes (see above). With options
 * (a level, serializers: fastify passes `{}` when a route sets none) the real child is made now.
 */
export function deferredChild(parent: Logger, bindings: pino.Bindings, options?: pino.ChildLoggerOptions): Logger {
  if (options && Object.keys(options).length > 0) return materialize(parent).child(bindings, options);
  let ancestor = parent;
  for (let state = stateOf(ancestor); state; state = stateOf(ancestor)) ancestor = state.real ?? state.parent;
  const child = Object.create(deferredPrototype(ancestor)) as Deferred;
  child[DEFERRED] = { parent, bindings, real: undefined };
  return child;
}
