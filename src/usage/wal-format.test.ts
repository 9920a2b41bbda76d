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

describe('usage WAL line format: the trace id', () => {
  const traced: UsageEvent = { ...event, traceId: '4bf92f3577b34da6a3ce929d0e0e4736' };

  it('round-trips a trace id, and a line without one (an untraced call, or an older build) has none', () => {
    expect(parseEvent(serializeEvent(traced))).toEqual(traced);
    const line = serializeEvent(event);
    expect(line).not.toContain('traceId');
    expect(parseEvent(line)).toEqual(event);
    expect('traceId' in parseEvent(line)).toBe(false);
  });

  it('refuses a trace id that is not 32 lowercase hex: an unreadable line, not a crash', () => {
    for (const bad of ['"4BF92F3577B34DA6A3CE929D0E0E4736"', '"4bf92f35"', 'null', '7']) {
      expect(() => parseEvent(serializeEvent(traced).replace('"4bf92f3577b34da6a3ce929d0e0e4736"', bad))).toThrow('invalid traceId');
    }
    const contents = parseSegment(Buffer.from([serializeEvent(traced), serializeEvent(event), serializeEvent(traced).replace('"4bf92f3577b34da6a3ce929d0e0e4736"', '"x"')].join('\n') + '\n'));
    expect(contents.events.map((e) => e.traceId ?? null)).toEqual([traced.traceId, null]);
    expect(contents.unreadable.map((u) => u.reason)).toEqual(['invalid traceId']);
  });
});
