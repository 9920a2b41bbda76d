import { parseEvent, parseSegment, serializeEvent } from './wal';
import type { UsageEvent } from './usage-event';

const event: UsageEvent = {
  id: 'req-1', tenantId: '00000000-0000-4000-8000-000000000001', apiKeyId: null, model: 'fashion-cnn', modelVersion: '1',
  items: 1, computeUnits: 1, status: 'OK', latencyMs: 1, queueMs: 0, computeMs: 0.5, executionProvider: 'cpu', protocol: 'GRPC',
  createdAt: new Date('2026-12-06T00:00:00.000Z'),
};

describe('usage WAL line format: the protocol field', () => {
  it('round-trips the protocol', () => {
    expect(parseEvent(serializeEvent(event))).toEqual(event);
  });

  it('reads a line of an older build (no protocol) as UNKNOWN, and refuses a protocol it does not know', () => {
    const old = serializeEvent(event).replace(',"protocol":"GRPC"', '');
    expect(old).not.toContain('protocol');
    expect(parseEvent(old)).toEqual({ ...event, protocol: 'UNKNOWN' });
    expect(() => parseEvent(serializeEvent(event).replace('"GRPC"', '"SMTP"'))).toThrow('invalid protocol');
    expect(() => parseEvent(serializeEvent(event).replace('"GRPC"', 'null'))).toThrow('invalid protocol');
  });

  it('a segment mixing both formats yields every record; a bad protocol is an unreadable line, not a crash', () => {
    const lines = [serializeEvent(event), serializeEvent(event).replace(',"protocol":"GRPC"', ''), serializeEvent(event).replace('"GRPC"', '"SMTP"'), serializeEvent({ ...event, protocol: 'REST' })];
    const contents = parseSegment(Buffer.from(lines.join('\n') + '\n'));
    expect(contents.events.map((e) => e.protocol)).toEqual(['GRPC', 'UNKNOWN', 'REST']);
    expect(contents.unreadable).toHaveLength(1);
    expect(contents.unreadable[0]?.reason).toBe('invalid protocol');
  });
});
