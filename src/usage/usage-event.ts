import { UUID } from '../ids/ids';

/**
 * One metered request, as the inference path hands it to the usage domain
 * (issue #7). Holds no inputs or outputs by design.
 */
/** The rollup key for records without an API key (the rollup primary key cannot hold NULL). */
export const NO_KEY = '00000000-0000-0000-0000-000000000000';

export const USAGE_STATUSES = ['OK', 'BAD_INPUT', 'RATE_LIMITED', 'QUOTA_EXCEEDED', 'TIMEOUT', 'OVERLOADED', 'ERROR'] as const;
export type UsageStatusName = (typeof USAGE_STATUSES)[number];

/** The front door a request came through; UNKNOWN only for records stored before the field existed (and old WAL lines). */
export const USAGE_PROTOCOLS = ['GRAPHQL', 'REST', 'GRPC', 'UNKNOWN'] as const;
export type UsageProtocolName = (typeof USAGE_PROTOCOLS)[number];

export interface UsageEvent {
  /** The request id; the idempotency key of the insert. */
  id: string;
  tenantId: string;
  apiKeyId: string | null;
  model: string;
  modelVersion: string | null;
  items: number;
  computeUnits: number;
  status: UsageStatusName;
  latencyMs: number;
  queueMs: number;
  computeMs: number;
  executionProvider: string | null;
  protocol: UsageProtocolName;
  createdAt: Date;
  /** Answered from the response cache (billed RESPONSE_CACHE_BILLED_FRACTION of its units); absent: false. */
  cacheHit?: boolean;
  /** The request's W3C trace id (32 lowercase hex) when tracing recorded its span; absent: not traced (and old WAL lines). */
  traceId?: string;
}

/**
 * What the request path calls. The promise resolves once the record is
 * durable (never waits for the database while the local log works); the
 * answer must not be sent before it resolves. It rejects with UNAVAILABLE
 * only when the record could be stored nowhere.
 */
export interface UsageSink {
  /** `reservation`: the one `reserve()` returned for this call; the record then supersedes it. */
  record(event: UsageEvent, reservation?: UsageReservation): Promise<void>;
  /**
   * Optional: makes `provisional` (the record as it will read if the call is
   * served) durable now, while the model computes (issue #25: durability
   * overlaps the run instead of following it). `record()` of a served call
   * whose billing matches then waits only for this write; any other outcome
   * is written and awaited as usual. After a crash, a provisional record with
   * no record after it is stored as it reads: extras are bounded by the
   * calls in flight, and no answered call is ever without its record.
   */
  reserve?(provisional: UsageEvent): UsageReservation;
}

/** A provisional usage record on its way to durable storage. */
export interface UsageReservation {
  readonly event: UsageEvent;
  /** true once durable; false when it could not be made durable (the final record is then awaited). */
  readonly durable: Promise<boolean>;
}

/** Whether `event` bills exactly what its reservation said: then the reservation alone makes the answer safe. */
export function billsAsReserved(event: UsageEvent, reserved: UsageEvent): boolean {
  return (
    event.status === 'OK' &&
    reserved.status === 'OK' &&
    event.id === reserved.id &&
    event.computeUnits === reserved.computeUnits &&
    event.items === reserved.items &&
    event.model === reserved.model &&
    event.tenantId === reserved.tenantId &&
    event.apiKeyId === reserved.apiKeyId &&
    (event.cacheHit ?? false) === (reserved.cacheHit ?? false)
  );
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

const STATUSES = new Set<string>(USAGE_STATUSES);
const TRACE_ID = /^[0-9a-f]{32}$/;
const PROTOCOLS = new Set<string>(USAGE_PROTOCOLS);

/** Why an event cannot be stored (a bug upstream), or null when it is fine. */
export function invalidReason(e: UsageEvent): string | null {
  if (typeof e.id !== 'string' || e.id.length === 0 || e.id.length > 200) return 'id';
  if (typeof e.tenantId !== 'string' || !UUID.test(e.tenantId)) return 'tenantId';
  if (e.apiKeyId !== null && (typeof e.apiKeyId !== 'string' || !UUID.test(e.apiKeyId))) return 'apiKeyId';
  if (typeof e.model !== 'string' || e.model.length === 0 || e.model.length > 200 || e.model.includes('\u0000')) return 'model';
  for (const f of ['id', 'modelVersion', 'executionProvider'] as const) {
    const v = e[f];
    if (v !== null && (typeof v !== 'string' || v.includes('\u0000'))) return f; // Postgres text cannot hold NUL
  }
  if (!STATUSES.has(e.status)) return 'status';
  if (!PROTOCOLS.has(e.protocol)) return 'protocol';
  if (!Number.isInteger(e.items) || e.items < 0 || e.items > 2_147_483_647) return 'items';
  for (const f of ['computeUnits', 'latencyMs', 'queueMs', 'computeMs'] as const) {
    if (typeof e[f] !== 'number' || !Number.isFinite(e[f]) || e[f] < 0) return f;
  }
  if (e.cacheHit !== undefined && typeof e.cacheHit !== 'boolean') return 'cacheHit';
  if (e.traceId !== undefined && (typeof e.traceId !== 'string' || !TRACE_ID.test(e.traceId))) return 'traceId';
  if (!(e.createdAt instanceof Date) || Number.isNaN(e.createdAt.getTime())) return 'createdAt';
  return null;
}
