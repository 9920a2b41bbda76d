/**
 * The one inference request path, shared by every front door (GraphQL
 * `infer`/`classify`, the Open Inference Protocol REST routes):
 * authenticate → scope → model name and allowlist → look up and size →
 * admit (limits, items × cost) → validate → queue/batch → run → one usage
 * record. A front door parses its protocol into a neutral request, calls
 * `infer` or `classify`, and shapes the outcome; it never talks to limits,
 * usage or the registry itself. Collaborators are interfaces handed in by
 * the composition root (server/app.ts).
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Principal } from '../auth/principal';
import { assertModelAllowed, assertModelInAllowlist, assertModelVisible, requireScope } from '../auth/scopes';
import type { Scope } from '../auth/principal';
import type { HeaderBag } from '../auth/authenticator';
import { BadInputError, DomainError, UnauthenticatedError } from '../errors';
import type { Logger } from '../log/logger';
import { limitError } from '../ratelimit/headers';
import { admitInSpan, type LimitChecker } from '../ratelimit/admit';
import type { LimitDecision } from '../ratelimit/types';
import { usageStatusForCode, type UsageEvent, type UsageProtocolName, type UsageReservation, type UsageStatusName } from '../usage/usage-event';
import { usageModelName } from '../usage/model-label';
import type { ClassifyRequest, ClassifyResponse, InferencePlan, InferRequest, InferResponse } from './inference.service';
import { MODEL_NAME } from './model-config';
import type { StepTrace } from '../tracing/types';
import { NOOP_STEPS } from '../tracing/noop';
import { ATTR, principalAttributes } from '../tracing/attributes';

/** Verifies the key a request presents; null when it presents none. */
export interface CallerAuthenticator {
  authenticate(headers: HeaderBag): Promise<Principal | null>;
}

/** Checks and consumes every limit of one request atomically (ratelimit domain). */
export type { LimitChecker };

/** Where usage records go. A durable sink returns a promise; the answer waits for it. */
export interface UsageRecorder {
  record(event: UsageEvent, reservation?: UsageReservation): void | Promise<void>;
  /** Where the sink can: the served record made durable while the model runs (UsageSink.reserve). */
  reserve?(provisional: UsageEvent): UsageReservation | undefined;
}

/** The engine: lookup and sizing, then validation, batching and the run (InferenceService). */
export interface InferenceEngine {
  planInfer(request: InferRequest): InferencePlan;
  planClassify(request: ClassifyRequest): InferencePlan;
  /** `trace` gets the validate, queue and compute spans of the run. */
  runInfer(plan: InferencePlan, request: InferRequest, trace?: StepTrace): Promise<InferResponse>;
  runClassify(plan: InferencePlan, request: ClassifyRequest, trace?: StepTrace): Promise<ClassifyResponse>;
  /** Whether the repository has a model of this name (usage records store only such names). */
  servesModel(name: string): boolean;
  /** Counts a request refused between lookup and run (limits) in the model's stats. */
  refused(plan: InferencePlan, error: unknown): void;
}

/** The response cache (inference domain): answers of models that opted in, per tenant and loaded version. */
export interface ResponseCacheLookup {
  /** null: this request is not cacheable (model not opted in, cache off, an input not keyed). */
  probe(tenantId: string, plan: InferencePlan, request: InferRequest): { key: string; hit: InferResponse | null } | null;
  store(key: string, model: string, response: InferResponse): void;
  /** Counts a probed request once the limits admitted it (hit or miss metric). */
  admitted(model: string, hit: boolean): void;
  /** Compute units a hit is billed (RESPONSE_CACHE_BILLED_FRACTION of the request's, whole). */
  hitUnits(computeUnits: number): number;
}

export interface PipelineDeps {
  auth: CallerAuthenticator;
  limits: LimitChecker;
  usage: UsageRecorder;
  engine: InferenceEngine;
  /** Absent: nothing is cached. */
  cache?: ResponseCacheLookup;
}

/** How a call may use the response cache: look it up once planned, store a served answer. */
interface Cacheable<T> {
  probe(principal: Principal, plan: InferencePlan): { key: string; hit: T | null } | null;
  store(key: string, plan: InferencePlan, result: T): void;
}

/** Who is calling: headers to authenticate, or the outcome of an authentication the front door already ran. */
export type Caller =
  | { headers: HeaderBag }
  | {
      principal: Principal | null;
      /** Why the presented key was refused. */
      authError?: DomainError | undefined;
    };

/** Protocol-neutral facts about the HTTP request an inference call belongs to. */
export interface CallContext {
  caller: Caller;
  requestId: string;
  /** The request id is the client's (x-request-id): the usage record id then gets a random suffix. */
  clientChoseRequestId: boolean;
  /** Where this call's usage record goes instead of the pipeline's sink (GraphQL holds it until the response is known). */
  usage?: UsageRecorder;
  /** The front door, stored on the usage record. */
  protocol: Exclude<UsageProtocolName, 'UNKNOWN'>;
  /** 1 for the first inference call of the HTTP request, 2 for a second GraphQL field, … */
  sequence: number;
  log: Logger;
  /** The HTTP request's span (none: nothing traced). */
  trace?: StepTrace;
}

export type PipelineOutcome<T> =
  | { ok: true; result: T; principal: Principal; limits: LimitDecision | null }
  | {
      ok: false;
      error: DomainError;
      /** null when authentication failed. */
      principal: Principal | null;
      /** The decision whose RateLimit headers the answer carries; null when none was made. */
      limits: LimitDecision | null;
    };

function assertInferenceScope(principal: Principal): void {
  requireScope(principal, 'inference');
}


/**
 * The usage record id: the request id, "<id>#2" for a second inference call
 * in the same HTTP request, and so on. A request id the client chose gets a
 * random suffix: inserts are idempotent on this id, so a reused or guessed
 * client id must neither hide a request from billing nor collide with another
 * tenant's record.
 */
export function usageRecordId(call: Pick<CallContext, 'requestId' | 'clientChoseRequestId' | 'sequence'>): string {
  const base = call.sequence <= 1 ? call.requestId : `${call.requestId}#${call.sequence}`;
  return call.clientChoseRequestId ? `${base}~${randomBytes(6).toString('hex')}` : base;
}

/**
 * The trace id a usage record carries: only when tracing recorded the request's span (an exporter
 * is configured and the span was sampled), so the id names a trace a collector has. A property read
 * and a branch per call; when set, ~45 bytes more in the WAL line and the insert.
 */
function recordedTraceId(trace: StepTrace): string | undefined {
  return trace.recording ? trace.traceId : undefined;
}

export function usageStatusFor(error: DomainError): UsageStatusName {
  return usageStatusForCode(error.code);
}

/** What a failed step leaves for the usage record and headers. */
class StepFailure {
  constructor(
    readonly error: DomainError,
    readonly limits: LimitDecision | null,
  ) {}
}

export class InferencePipeline {
  constructor(private readonly deps: PipelineDeps) {}

  infer(call: CallContext, request: InferRequest): Promise<PipelineOutcome<InferResponse>> {
    const cache = this.deps.cache;
    const cacheable: Cacheable<InferResponse> | undefined = cache && {
      probe: (principal, plan) => cache.probe(principal.tenantId, plan, request),
      store: (key, plan, result) => cache.store(key, plan.model, result),
    };
    return this.run(call, request.model, () => this.deps.engine.planInfer(request), (plan, trace) => this.deps.engine.runInfer(plan, request, trace), cacheable);
  }

  classify(call: CallContext, request: ClassifyRequest): Promise<PipelineOutcome<ClassifyResponse>> {
    return this.run(call, request.model, () => this.deps.engine.planClassify(request), (plan, trace) => this.deps.engine.runClassify(plan, request, trace));
  }

  /**
   * A call whose body the front door could not parse into a request: it goes
   * through the same steps (authentication first, so a bad key is still 401)
   * and fails with `error` where the model would be looked up, charged one
   * request and recorded like any other bad input.
   */
  async rejected(call: CallContext, model: string, error: DomainError): Promise<Extract<PipelineOutcome<never>, { ok: false }>> {
    const outcome = await this.run<never>(
      call,
      model,
      () => {
        throw error;
      },
      () => Promise.reject(error),
    );
    // `never` has no value: the run cannot have succeeded.
    return outcome.ok ? { ok: false, error, principal: outcome.principal, limits: outcome.limits } : outcome;
  }

  /**
   * Authenticates the caller (UNAUTHENTICATED without a valid key). Headers
   * are verified in an `authenticate` span; an outcome the front door brought
   * was traced where it authenticated.
   */
  async authenticate(caller: Caller, trace: StepTrace = NOOP_STEPS): Promise<Principal> {
    if (!('headers' in caller)) {
      if (caller.authError) throw caller.authError;
      if (!caller.principal) throw new UnauthenticatedError();
      return caller.principal;
    }
    return trace.step('authenticate', async (span) => {
      const principal = await this.deps.auth.authenticate(caller.headers);
      if (!principal) throw new UnauthenticatedError();
      if (trace.recording) span.set(principalAttributes(principal));
      return principal;
    });
  }

  /** One limits check in an `admit` span: the decision, and the limit that refused. */
  private admit(principal: Principal, computeUnits: number, trace: StepTrace, model?: string): Promise<LimitDecision> {
    return admitInSpan(this.deps.limits, principal, model === undefined ? { computeUnits } : { computeUnits, model }, trace);
  }

  /**
   * For a front door's model routes that run nothing (metadata, readiness):
   * authenticate, consume one request of limits (as every authenticated
   * GraphQL operation does), then the scope (`inference`, or the one the
   * route needs, e.g. MODEL_STATISTICS_SCOPE) and the key's model allowlist
   * (`model` null: a route over every model the key may see).
   */
  async admitModelRoute(caller: Caller, model: string | null, log: Logger, trace: StepTrace = NOOP_STEPS, scope: Scope = 'inference'): Promise<PipelineOutcome<null>> {
    let principal: Principal | null = null;
    let limits: LimitDecision | null = null;
    try {
      principal = await this.authenticate(caller, trace);
      limits = await this.admit(principal, 0, trace);
      if (!limits.allowed) throw limitError(limits);
      if (scope === 'inference') assertInferenceScope(principal);
      else requireScope(principal, scope);
      if (model !== null) assertModelAllowed(principal, model);
      return { ok: true, result: null, principal, limits };
    } catch (error) {
      return { ok: false, error: this.domain(error, { log }), principal, limits };
    }
  }

  /**
   * Consumes one request (no compute units) for a call that failed before it
   * could be sized; the failure stays what the client sees. An error of the
   * limiter itself is logged, not raised over the original failure.
   */
  async chargeRequest(principal: Principal, log: Logger, trace: StepTrace = NOOP_STEPS): Promise<LimitDecision | null> {
    try {
      return await this.admit(principal, 0, trace);
    } catch (error) {
      log.warn({ err: error instanceof Error ? error.message : String(error) }, 'limit check for a refused inference call failed');
      return null;
    }
  }

  /** Why over 80 lines: the request path's steps in order (authenticate, admit, validate, run, record), each under its span; the one place the order is written. */
  private async run<T extends { queueMs: number; computeMs: number }>(
    call: CallContext,
    model: string,
    plan: () => InferencePlan,
    execute: (plan: InferencePlan, trace: StepTrace) => Promise<T>,
    cacheable?: Cacheable<T>,
  ): Promise<PipelineOutcome<T>> {
    const started = performance.now();
    const trace = call.trace ?? NOOP_STEPS;
    const traceId = recordedTraceId(trace);
    let principal: Principal;
    try {
      principal = await this.authenticate(call.caller, trace);
    } catch (error) {
      const failure = this.domain(error, call);
      trace.annotate({ [ATTR.errorType]: failure.code });
      return { ok: false, error: failure, principal: null, limits: null };
    }
    const unscoped = this.guard(() => assertInferenceScope(principal), call);
    // A key without the inference scope still costs one request, as it does on every GraphQL operation; no usage record.
    if (unscoped) {
      trace.annotate({ [ATTR.errorType]: unscoped.code });
      return { ok: false, error: unscoped, principal, limits: await this.chargeRequest(principal, call.log, trace) };
    }

    let planned: InferencePlan | null = null;
    let limits: LimitDecision | null = null;
    let outcome: PipelineOutcome<T>;
    let cached: { key: string; hit: T | null } | null = null;
    let units = 0;
    const recordId = usageRecordId(call);
    const sink = call.usage ?? this.deps.usage;
    let reservation: UsageReservation | undefined;
    try {
      // A call refused before admission (name, allowlist, lookup, a body the front door
      // could not parse) gets a `validate` span for that check; a plan that passes is
      // validated (tensors, images) in the engine's own span after admission.
      const checkedAt = performance.now();
      // Model names are bounded (config.json's rule); anything else is refused
      // before limits and recorded under a placeholder, so a client cannot put
      // arbitrary text into usage records and rollup keys.
      const allowed = this.guard(() => {
        if (!MODEL_NAME.test(model)) throw new BadInputError('model is not a valid model name (letters, digits, _ . -, at most 128)', 'model');
        assertModelInAllowlist(principal, model);
      }, call);
      if (allowed) {
        trace.recorded('validate', checkedAt, performance.now(), {}, allowed.code);
        throw new StepFailure(allowed, await this.chargeRequest(principal, call.log, trace));
      }

      try {
        // Another tenant's private model fails here, exactly as a name that never existed does (same answer, same charge).
        assertModelVisible(principal, model);
        planned = plan();
      } catch (error) {
        const failure = this.domain(error, call);
        trace.recorded('validate', checkedAt, performance.now(), {}, failure.code);
        // Unknown, not READY (or a body the front door could not parse): the request
        // still counts against the request limits (order: authenticate, limits,
        // validate), so probing for models is not free; a refusal by them wins.
        const decision = await this.admit(principal, 0, trace);
        throw new StepFailure(decision.allowed ? failure : limitError(decision), decision);
      }

      // Looked up before admission: a hit is admitted (and billed) at its own, smaller units.
      cached = cacheable?.probe(principal, planned) ?? null;
      units = cached?.hit && this.deps.cache ? this.deps.cache.hitUnits(planned.computeUnits) : planned.computeUnits;
      // The record this call will have if served is made durable while the limits are checked and the
      // model runs, not after either: a lone request waits for the slowest of the three, not their sum.
      // Refused, it is superseded by the refusal's own record (a crash in between bills it: one of the
      // requests in flight, the bound the crash guarantee already allows).
      if (!cached?.hit && sink.reserve) reservation = sink.reserve(this.servedRecord(call, recordId, principal, model, planned, units, traceId));
      limits = await this.admit(principal, units, trace, model);
      if (!limits.allowed) {
        const refusal = limitError(limits);
        this.deps.engine.refused(planned, refusal);
        throw new StepFailure(refusal, limits);
      }
      if (cached) this.deps.cache?.admitted(planned.model, cached.hit !== null);
      const result = cached?.hit ?? (await execute(planned, trace));
      if (cached && !cached.hit) cacheable?.store(cached.key, planned, result);
      outcome = { ok: true, result, principal, limits };
    } catch (error) {
      outcome =
        error instanceof StepFailure
          ? { ok: false, error: error.error, principal, limits: error.limits }
          : { ok: false, error: this.domain(error, call), principal, limits };
    }

    const served = outcome.ok ? outcome.result : null;
    const event: UsageEvent = {
      id: recordId,
      tenantId: principal.tenantId,
      apiKeyId: principal.apiKeyId,
      // Only names of served models are stored, never client text (a pasted key, unbounded rollup groups).
      // A reserved call's provisional record already resolved the stored name (once per call).
      model: reservation?.event.model ?? usageModelName(model, (name) => this.deps.engine.servesModel(name)),
      modelVersion: planned?.modelVersion ?? null,
      items: planned?.items ?? 0,
      // Only served requests are billed; a refused or failed one records its items and 0 units.
      computeUnits: outcome.ok && planned ? units : 0,
      status: outcome.ok ? 'OK' : usageStatusFor(outcome.error),
      latencyMs: performance.now() - started,
      queueMs: served?.queueMs ?? 0,
      computeMs: served?.computeMs ?? 0,
      executionProvider: planned?.executionProvider ?? null,
      protocol: call.protocol,
      // A reserved call keeps its provisional record's time: (id, createdAt) is the usage table's key.
      createdAt: reservation?.event.createdAt ?? new Date(),
    };
    if (outcome.ok && cached?.hit) event.cacheHit = true;
    if (traceId) event.traceId = traceId;
    if (trace.recording) {
      trace.annotate({
        // The stored name: a served model's, else a placeholder (never client text).
        [ATTR.model]: event.model,
        [ATTR.usageStatus]: event.status,
        ...(event.modelVersion ? { [ATTR.modelVersion]: event.modelVersion } : {}),
        ...(outcome.ok ? {} : { [ATTR.errorType]: outcome.error.code }),
      });
    }
    try {
      // One record per call, whatever happened; a durable sink is awaited before the answer goes.
      // A sink the front door holds (GraphQL) writes later, in its own record span.
      if (call.usage) await sink.record(event, reservation);
      else await trace.step('record', () => sink.record(event, reservation), { [ATTR.usageStatus]: event.status });
    } catch (error) {
      return { ok: false, error: this.domain(error, call), principal, limits: outcome.limits };
    }
    return outcome;
  }

  /** The record of this call as it will read if it is served (latencies still unknown: 0). */
  private servedRecord(call: CallContext, id: string, principal: Principal, model: string, planned: InferencePlan, units: number, traceId: string | undefined): UsageEvent {
    const event: UsageEvent = {
      id,
      tenantId: principal.tenantId,
      apiKeyId: principal.apiKeyId,
      model: usageModelName(model, (name) => this.deps.engine.servesModel(name)),
      modelVersion: planned.modelVersion,
      items: planned.items,
      computeUnits: units,
      status: 'OK',
      latencyMs: 0,
      queueMs: 0,
      computeMs: 0,
      executionProvider: planned.executionProvider,
      protocol: call.protocol,
      createdAt: new Date(),
    };
    if (traceId) event.traceId = traceId;
    return event;
  }

  /** Runs a check and returns its domain error instead of throwing. */
  private guard(check: () => void, call: Pick<CallContext, 'log'>): DomainError | null {
    try {
      check();
      return null;
    } catch (error) {
      return this.domain(error, call);
    }
  }

  /** A coded error for the client; an unexpected one is logged whole and answered as INTERNAL. */
  private domain(error: unknown, call: Pick<CallContext, 'log'>): DomainError {
    if (error instanceof DomainError) return error;
    call.log.error({ err: error }, 'unexpected error in an inference call');
    return new DomainError('INTERNAL', 'Internal server error');
  }
}
