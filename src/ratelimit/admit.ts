/**
 * One limits check inside an `admit` span: both doors' admission (the
 * pipeline's per-call check and the GraphQL operation check) make their
 * decision through it, so the span's attributes and failure are written once.
 */
import type { Principal } from '../auth/principal';
import type { StepTrace, TraceAttributes } from '../tracing/types';
import { ATTR } from '../tracing/attributes';
import { limitError } from './headers';
import type { LimitDecision } from './types';

export interface LimitChecker {
  /** model: for the price a money budget charges. */
  check(principal: Principal, request: { computeUnits: number; model?: string }): Promise<LimitDecision>;
}

/** The decision, with the span recording it (and the limit that refused) when the trace records. */
export function admitInSpan(limits: LimitChecker, principal: Principal, request: { computeUnits: number; model?: string }, trace: StepTrace): Promise<LimitDecision> {
  return trace.step(
    'admit',
    async (span) => {
      const decision = await limits.check(principal, request);
      if (trace.recording) {
        span.set(admitAttributes(decision));
        if (!decision.allowed) span.fail(limitError(decision).code);
      }
      return decision;
    },
    { [ATTR.computeUnits]: request.computeUnits },
  );
}

/** An `admit` span's facts: the decision, where it was made, and the limit that refused. */
export function admitAttributes(decision: LimitDecision): TraceAttributes {
  const attributes: TraceAttributes = { [ATTR.limitDecision]: decision.allowed ? 'allowed' : decision.reason, [ATTR.limitSource]: decision.source };
  if (!decision.allowed && decision.reason === 'limit') attributes[ATTR.limitName] = decision.hit.name;
  return attributes;
}
