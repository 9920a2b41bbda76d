import { status } from '@grpc/grpc-js';
import { BadInputError, DomainError, ModelUnavailableError, OverloadedError, TimeoutError, UnavailableError } from '../../errors';
import { DOMAIN_CONTRACT, GRAPHQL_CLIENT_CONTRACT, HTTP_CONTRACT, type ContractEntry } from '../../errors/contract';
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
      MODEL_INVALID: 'INVALID_ARGUMENT',
      MODEL_TOO_LARGE: 'RESOURCE_EXHAUSTED',
      MODEL_QUOTA_EXCEEDED: 'RESOURCE_EXHAUSTED',
      UNAVAILABLE: 'UNAVAILABLE',
      INTERNAL: 'INTERNAL',
    });
    expect(grpcCode('SOMETHING_ELSE')).toBe(status.INTERNAL);
  });

  it('every 503 and 504 code of the contract names a retry hint; no other code does', () => {
    for (const table of [DOMAIN_CONTRACT, HTTP_CONTRACT, GRAPHQL_CLIENT_CONTRACT] as Record<string, ContractEntry>[]) {
      for (const [code, entry] of Object.entries(table)) {
        expect({ code, hinted: entry.retryAfterSeconds !== undefined }).toEqual({ code, hinted: entry.status === 503 || entry.status === 504 });
      }
    }
  });

  it("gives UNAVAILABLE and DEADLINE_EXCEEDED a retry hint: the error's own, else the contract's", () => {
    const overloaded = grpcStatus(new OverloadedError('queue full', { retryAfterSeconds: 3 }), null, 'r1');
    expect(overloaded.code).toBe(status.UNAVAILABLE);
    expect([meta(overloaded, 'retry-after'), meta(overloaded, 'grpc-retry-pushback-ms'), meta(overloaded, 'modelgate-code'), meta(overloaded, 'x-request-id')]).toEqual(['3', '3000', 'OVERLOADED', 'r1']);
    const seen = [new UnavailableError(), new ModelUnavailableError('loading'), new TimeoutError('deadline passed')].map((error) => {
      const s = grpcStatus(error, null, 'r2');
      return [status[s.code], meta(s, 'retry-after'), meta(s, 'grpc-retry-pushback-ms')];
    });
    expect(seen).toEqual([
      ['UNAVAILABLE', '1', '1000'],
      ['UNAVAILABLE', '5', '5000'],
      ['DEADLINE_EXCEEDED', '1', '1000'],
    ]);
  });

  it('gives client mistakes and bugs no retry hint, and never internal text beyond the message', () => {
    for (const error of [new BadInputError('bad shape', 'inputs[0].shape'), new DomainError('INTERNAL', 'Internal server error')]) {
      const s = grpcStatus(error, null, 'r3');
      expect(meta(s, 'retry-after')).toBeUndefined();
      expect(s.details).toBe(error.message);
    }
  });
});
