/**
 * Usage records wait for the answer. A resolver that returned can still see
 * its answer fail afterwards (a field of its result cannot be serialized, a
 * non-null child errs and nulls the whole field); the record is written when
 * the response is complete, so its status and units match what the client
 * received: an inference field with an error under it is recorded with that
 * error's status and 0 units.
 */
import { usageStatusForCode, type UsageEvent, type UsageReservation, type UsageSink } from '../../usage/usage-event';

/** A record held on the request's context, with the response key of the field it meters. */
export interface PendingUsage {
  responseKey: string;
  event: UsageEvent;
  /** The provisional record made durable while the call ran (UsageSink.reserve). */
  reservation?: UsageReservation;
}

/** Holds a record until `finalizeUsage` runs for the same request. */
export function deferUsage(pending: PendingUsage[], responseKey: string, event: UsageEvent, reservation?: UsageReservation): void {
  pending.push(reservation ? { responseKey, event, reservation } : { responseKey, event });
}

interface SentError {
  path?: readonly (string | number)[];
  extensions?: Record<string, unknown>;
}

/**
 * Writes the request's held records, downgrading a served one whose answer
 * carries an error. Resolves once every record is durable; rejects when one
 * could be stored nowhere (the answer must then not go out as served).
 */
export async function finalizeUsage(pending: PendingUsage[], sink: UsageSink, sent: readonly SentError[]): Promise<void> {
  const list = pending.splice(0);
  const writes = list.map(({ responseKey, event, reservation }) => {
    const failed = event.status === 'OK' ? sent.find((e) => e.path?.[0] === responseKey) : undefined;
    if (!failed) return sink.record(event, reservation);
    const code = failed.extensions?.['code'];
    // Billed otherwise than reserved: the sink waits for this record to be durable.
    return sink.record({ ...event, status: usageStatusForCode(typeof code === 'string' ? code : 'INTERNAL'), computeUnits: 0 }, reservation);
  });
  const results = await Promise.allSettled(writes);
  const rejected = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (rejected) throw rejected.reason;
}
