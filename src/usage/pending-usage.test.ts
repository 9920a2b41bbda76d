import { deferUsage, finalizeUsage } from './pending-usage';
import type { UsageEvent } from './usage-event';

const event = (id: string, status: UsageEvent['status'] = 'OK'): UsageEvent => ({
  id, tenantId: 't', apiKeyId: 'k', model: 'm', modelVersion: '1', items: 1, computeUnits: status === 'OK' ? 3 : 0, status,
  latencyMs: 1, queueMs: 0, computeMs: 0, executionProvider: 'cpu', createdAt: new Date(0),
});

describe('usage written with the answer', () => {
  it('records a served field as served, and one whose answer carries an error with that status and 0 units', () => {
    const recorded: UsageEvent[] = [];
    const request = {};
    deferUsage(request, 'a', event('1'));
    deferUsage(request, 'b', event('2'));
    deferUsage(request, 'c', event('3', 'TIMEOUT'));
    expect(recorded).toHaveLength(0);
    finalizeUsage(request, { record: (e) => recorded.push(e) }, [{ path: ['b', 'outputs', 0, 'data'], extensions: { code: 'BAD_USER_INPUT' } }, { path: ['c'], extensions: { code: 'TIMEOUT' } }]);
    expect(recorded.map((e) => [e.id, e.status, e.computeUnits])).toEqual([
      ['1', 'OK', 3],
      ['2', 'BAD_INPUT', 0],
      ['3', 'TIMEOUT', 0],
    ]);
    // Once only.
    finalizeUsage(request, { record: (e) => recorded.push(e) }, []);
    expect(recorded).toHaveLength(3);
  });
});
