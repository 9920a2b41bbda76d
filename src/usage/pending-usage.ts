/**
 * Usage records wait for the answer. A resolver that returned can still see
 * its answer fail afterwards (a field of its result cannot be serialized, a
 * non-null child errs and nulls the whole field); the record is written when
 * the response is complete, so its status and units match what the client
 * received: an inference field with an error under it is recorded with that
 * error's status and 0 units.
 */
import type { UsageEvent, UsageSink, UsageStatusName } from './usage-event';

interface Pending {
  responseKey: string;
  event: UsageEvent;
}

const pendingByRequest = new WeakMap<object, Pending[]>();

/** Holds a record until `finalizeUsage` runs for the same request context. */
export function deferUsage(request: object, responseKey: string, event: UsageEvent): void {
  const list = pendingByRequest.get(request);
  if (list) list.push({ responseKey, event });
  else pendingByRequest.set(request, [{ responseKey, event }]);
}

interface SentError {
  path?: readonly (string | number)[];
  extensions?: Record<string, unknown>;
}

/** Writes the request's held records, downgrading a served one whose answer carries an error. */
export function finalizeUsage(request: object, sink: UsageSink, sent: readonly SentError[]): void {
  const list = pendingByRequest.get(request);
  if (!list) return;
  pendingByRequest.delete(request);
  for (const { responseKey, event } of list) {
    const failed = event.status === 'OK' ? sent.find((e) => e.path?.[0] === responseKey) : undefined;
    if (failed) {
      const code = failed.extensions?.['code'];
      sink.record({ ...event, status: usageStatusForCode(typeof code === 'string' ? code : 'INTERNAL'), computeUnits: 0 });
    } else {
      sink.record(event);
    }
  }
}

/** The usage status for the code a client received (README, "Usage and billing API"). */
export function usageStatusForCode(code: string): UsageStatusName {
  switch (code) {
    case 'BAD_USER_INPUT':
    case 'NOT_FOUND':
    case 'FORBIDDEN':
      return 'BAD_INPUT';
    case 'RATE_LIMITED':
      return 'RATE_LIMITED';
    case 'QUOTA_EXCEEDED':
      return 'QUOTA_EXCEEDED';
    case 'TIMEOUT':
      return 'TIMEOUT';
    case 'OVERLOADED':
    case 'MODEL_UNAVAILABLE':
      return 'OVERLOADED';
    default:
      return 'ERROR';
  }
}
