import { deferUsage, finalizeUsage, type PendingUsage } from './pending-usage';
import type { UsageEvent } from '../../usage/usage-event';

const event = (id: string, status: UsageEvent['status'] = 'OK'): UsageEvent => ({
  id, tenantId: 't', apiKeyId: 'k', model: 'm', modelVersion: '1', items: 1, computeUnits: status === 'OK' ? 3 : 0, status,
  latencyMs: 1, queueMs: 0, computeMs: 0, executionProvider: 'cpu', protocol: 'GRAPHQL', createdAt: new Date(0),
});

describe('usage written with the answer', () => {
  it('records a served field as served, and one whose answer carries an error with that status and 0 units', async () => {
    const recorded: UsageEvent[] = [];
    const sink = { record: async (e: UsageEvent) => void recorded.push(e) };
    const pending: PendingUsage[] = [];
    deferUsage(pending, 'a', event('1'));
    deferUsage(pending, 'b', event('2'));
    deferUsage(pending, 'c', event('3', 'TIMEOUT'));
    expect(recorded).toHaveLength(0);
    await finalizeUsage(pending, sink, [{ path: ['b', 'outputs', 0, 'data'], extensions: { code: 'BAD_USER_INPUT' } }, { path: ['c'], extensions: { code: 'TIMEOUT' } }]);
    expect(recorded.map((e) => [e.id, e.status, e.computeUnits])).toEqual([
      ['1', 'OK', 3],
      ['2', 'BAD_INPUT', 0],
      ['3', 'TIMEOUT', 0],
    ]);
    // Once only.
    await finalizeUsage(pending, sink, []);
    expect(recorded).toHaveLength(3);
  });

  it('rejects when a record could be stored nowhere, after trying every record', async () => {
    const recorded: string[] = [];
    const pending: PendingUsage[] = [];
    deferUsage(pending, 'a', event('1'));
    deferUsage(pending, 'b', event('2'));
    const sink = {
      record: async (e: UsageEvent) => {
        if (e.id === '1') throw new Error('log and database down');
        recorded.push(e.id);
      },
    };
    await expect(finalizeUsage(pending, sink, [])).rejects.toThrow('log and database down');
    expect(recorded).toEqual(['2']);
  });
});
