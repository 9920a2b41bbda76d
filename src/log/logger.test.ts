import { Writable } from 'node:stream';
import pino from 'pino';
import { createLogger, deferredChild, scrubSecrets } from './logger';

function capture(): { stream: pino.DestinationStream; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { stream: stream as unknown as pino.DestinationStream, lines };
}

describe('logger', () => {
  const key = 'mg_live_4fJ9kQ2xLm8Zp0aBcDeFgHiJkLmNoPqRsTuVwXyZ012345abcdef';

  it('masks API keys and bearer tokens in messages', () => {
    expect(scrubSecrets(`used ${key} here`)).toBe('used mg_live_[REDACTED] here');
    expect(scrubSecrets('Authorization: Bearer abc.def')).toBe('Authorization: Bearer [REDACTED]');
  });

  it('redacts auth headers, key fields and keys inside errors', () => {
    const { stream, lines } = capture();
    const log = createLogger({ level: 'info', pretty: false, destination: stream });
    log.info({ req: { headers: { authorization: `Bearer ${key}`, 'x-api-key': key } } }, 'request');
    log.info({ plaintext: key, nested: { apiKey: key } }, `created ${key}`);
    log.error({ err: new Error(`bad key ${key}`) }, 'failed');
    const text = lines.join('');
    expect(lines).toHaveLength(3);
    expect(text).not.toContain(key.slice(8));
    expect(text).toContain('[REDACTED]');
  });

  // Issue #28 item 7: a key in a URL, a header echoed into a field, or a child's bindings was written as is.
  it('masks keys in every string field and binding, at any depth', () => {
    const { stream, lines } = capture();
    const log = createLogger({ level: 'debug', pretty: false, destination: stream });
    log.child({ requestId: `x${key}` }).debug({ url: `/v2/models/${key}/ready?k=${key}`, deep: { list: [{ v: `id_${key}` }] }, n: 3 }, 'request');
    const line = JSON.parse(lines[0] ?? '{}') as Record<string, unknown>;
    expect(lines.join('')).not.toContain(key.slice(8));
    expect(line).toMatchObject({ url: '/v2/models/mg_live_[REDACTED]/ready?k=mg_live_[REDACTED]', requestId: 'xmg_live_[REDACTED]', deep: { list: [{ v: 'id_mg_live_[REDACTED]' }] }, n: 3 });
  });

  it('writes each key once in a line from a child of a child', () => {
    const { stream, lines } = capture();
    const log = createLogger({ level: 'info', pretty: false, destination: stream });
    const models = log.child({ component: 'inference' }).child({ component: 'models' }).child({ model: 'cnn' });
    models.info({ version: 1 }, 'ready');
    log.child({ component: 'http' }).child({ requestId: 'r1' }).child({ requestId: 'r2', service: 'other' }).warn('x');
    // A key repeated from two generations up, past a child that added other keys (a request's trace ids).
    models.child({ requestId: 'r3' }).child({ trace_id: 't' }).child({ component: 'batcher', requestId: 'r4' }).info('deep');
    expect(lines).toHaveLength(3);
    for (const line of lines) {
      const keys = [...line.matchAll(/"([A-Za-z]+)":/g)].map((m) => m[1]);
      expect(keys.length).toBe(new Set(keys).size);
    }
    expect(JSON.parse(lines[0] ?? '')).toMatchObject({ component: 'inference.models', model: 'cnn', version: 1, service: 'modelgate', msg: 'ready' });
    expect(JSON.parse(lines[1] ?? '')).toMatchObject({ component: 'http', requestId: 'r2', service: 'modelgate', level: 40 });
    expect(JSON.parse(lines[2] ?? '')).toMatchObject({ component: 'inference.models.batcher', model: 'cnn', requestId: 'r4', trace_id: 't', msg: 'deep' });
  });

  it('keeps a parent level on a child made from the root', () => {
    const { stream, lines } = capture();
    const quiet = createLogger({ level: 'info', pretty: false, destination: stream }).child({ component: 'a' });
    quiet.level = 'warn';
    quiet.child({ component: 'b' }).info('hidden');
    expect(lines).toHaveLength(0);
  });

  describe('deferred children (a request\'s logger)', () => {
    function counted(level: string): { root: pino.Logger; lines: string[]; made: () => number } {
      const { stream, lines } = capture();
      let made = 0;
      const root = pino({ level, onChild: () => (made += 1) }, stream);
      return { root, lines, made: () => made };
    }

    it('makes no pino child until a line is written, then one per generation, once', () => {
      const { root, lines, made } = counted('info');
      const request = deferredChild(root, { requestId: 'r1' });
      const traced = request.child({ trace_id: 't1', span_id: 's1' });
      traced.debug('below the level');
      expect(traced.isLevelEnabled('debug')).toBe(false);
      expect(traced.level).toBe('info');
      expect(made()).toBe(0);
      expect(lines).toHaveLength(0);
      traced.info({ n: 1 }, 'first');
      traced.warn('second');
      request.error('third');
      expect(made()).toBe(2);
      expect(lines.map((l) => JSON.parse(l) as Record<string, unknown>)).toEqual([
        expect.objectContaining({ requestId: 'r1', trace_id: 't1', span_id: 's1', n: 1, msg: 'first', level: 30 }),
        expect.objectContaining({ requestId: 'r1', trace_id: 't1', msg: 'second', level: 40 }),
        expect.objectContaining({ requestId: 'r1', msg: 'third', level: 50 }),
      ]);
      expect(JSON.parse(lines[2] ?? '{}')).not.toHaveProperty('trace_id');
    });

    it('answers bindings, and takes a level of its own without changing its parent', () => {
      const { root, lines } = counted('info');
      const request = deferredChild(root, { requestId: 'r2' });
      const traced = request.child({ trace_id: 't2' });
      expect(traced.bindings()).toMatchObject({ requestId: 'r2', trace_id: 't2' });
      traced.level = 'debug';
      traced.debug('shown');
      request.debug('hidden');
      expect(root.level).toBe('info');
      expect(request.level).toBe('info');
      expect(lines).toHaveLength(1);
      expect(JSON.parse(lines[0] ?? '{}')).toMatchObject({ requestId: 'r2', trace_id: 't2', msg: 'shown', level: 20 });
    });

    it('goes through the gateway logger\'s rules when it is made: keys scrubbed, a repeated key written once', () => {
      const { stream, lines } = capture();
      const log = createLogger({ level: 'info', pretty: false, destination: stream });
      const key = 'mg_live_4fJ9kQ2xLm8Zp0aBcDeFgHiJkLmNoPqRsTuVwXyZ012345abcdef';
      deferredChild(log.child({ component: 'http' }), { component: 'request', requestId: `x${key}` }).child({ trace_id: 't3' }).warn('w');
      expect(lines).toHaveLength(1);
      const keys = [...(lines[0] ?? '').matchAll(/"([A-Za-z_]+)":/g)].map((m) => m[1]);
      expect(keys.length).toBe(new Set(keys).size);
      expect(lines[0]).not.toContain(key.slice(8));
      expect(JSON.parse(lines[0] ?? '{}')).toMatchObject({ component: 'http.request', requestId: 'xmg_live_[REDACTED]', trace_id: 't3', service: 'modelgate', msg: 'w' });
    });
  });
});
