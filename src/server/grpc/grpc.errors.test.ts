import { status } from '@grpc/grpc-js';
import { BadInputError, DomainError, ModelUnavailableError, OverloadedError, TimeoutError, UnavailableError } from '../../errors';
import { DOMAIN_CONTRACT } from '../../errors/contract';
import { grpcCode, grpcStatus } from './grpc.errors';

const meta = (s: ReturnType<typeof grpcStatus>, key: string) => s.metadata?.get(key)[0];

describe('gRPC statuses from the error contract', () => {
  it('maps every domain code to the status its gRPC column names', () => {
    const seen = Object.fromEntries(Object.keys(DOMAIN_CONTRACT).map((code) => [code, status[grpcCode(code)]]));
    expect(seen).toEqual({
      UNAUTHENTICATED: 'UNAUTHENTICATED',
      FORBIDDEN: 'PERMISSION_DENIED',
      BAD_USER_INPUT: 'INVALID_ARGUMENT',
      NOT_FOUND: 'NOT_FOUND',
      RATE_LIMITED: 'RESOURCE_EXHAUSTED',
      QUOTA_EXCEEDED: 'RESOURCE_EXHAUSTED',
      MODEL_UNAVAILABLE: 'UNAVAILABLE',
      OVERLOADED: 'UNAVAILABLE',
      TIMEOUT: 'DEADLINE_EXCEEDED',
      UNAVAILABLE: 'UNAVAILABLE',
      INTERNAL: 'INTERNAL',
    });
    expect(grpcCode('SOMETHING_ELSE')).toBe(status.INTERNAL);
  });

  it("gives UNAVAILABLE a retry hint: the error's own, else one second", () => {
    const overloaded = grpcStatus(new OverloadedError('queue full', { retryAfterSeconds: 3 }), null, 'r1');
    expect(overloaded.code).toBe(status.UNAVAILABLE);
    expect([meta(overloaded, 'retry-after'), meta(overloaded, 'grpc-retry-pushback-ms'), meta(overloaded, 'modelgate-code'), meta(overloaded, 'x-request-id')]).toEqual(['3', '3000', 'OVERLOADED', 'r1']);
    for (const error of [new UnavailableError(), new ModelUnavailableError('loading')]) {
      const s = grpcStatus(error, null, 'r2');
      expect([s.code, meta(s, 'retry-after'), meta(s, 'grpc-retry-pushback-ms')]).toEqual([status.UNAVAILABLE, '1', '1000']);
    }
  });

  it('gives client mistakes, deadlines and bugs no retry hint, and never internal text beyond the message', () => {
    for (const error of [new BadInputError('bad shape', 'inputs[0].shape'), new TimeoutError('deadline passed'), new DomainError('INTERNAL', 'Internal server error')]) {
      const s = grpcStatus(error, null, 'r3');
      expect(meta(s, 'retry-after')).toBeUndefined();
      expect(s.details).toBe(error.message);
    }
  });
});
