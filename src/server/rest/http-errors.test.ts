import { countCommas, normalizeErrorBody } from './http-errors';
import { isDependencyUnavailable } from '../../errors';

describe('the HTTP error contract', () => {
  it('wraps plain text and foreign JSON in the GraphQL error shape with a public code and the request id', () => {
    const text = JSON.parse(normalizeErrorBody('This operation has been blocked as a potential CSRF', 400, 'r1').body);
    expect(text).toEqual({ errors: [{ message: 'This operation has been blocked as a potential CSRF', extensions: { code: 'BAD_REQUEST', requestId: 'r1' } }] });
    const foreign = JSON.parse(normalizeErrorBody('{"error":"Service Unavailable","code":"FST_ERR_X"}', 503, 'r2').body);
    expect(foreign.errors[0].extensions).toEqual({ code: 'UNAVAILABLE', requestId: 'r2' });
    expect(JSON.stringify(foreign)).not.toContain('FST_');
  });

  it('keeps public codes, replaces others and internal text, and turns an UNAVAILABLE 500 into 503', () => {
    const out = normalizeErrorBody('{"errors":[{"message":"Can\'t reach database server at 127.0.0.1:5490","extensions":{"code":"UNAVAILABLE"}}]}', 500, 'r3');
    expect(out.status).toBe(503);
    expect(JSON.parse(out.body).errors[0]).toEqual({ message: 'Internal server error', extensions: { code: 'UNAVAILABLE', requestId: 'r3' } });
    const odd = JSON.parse(normalizeErrorBody('{"errors":[{"message":"x","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}', 400, 'r4').body);
    expect(odd.errors[0].extensions.code).toBe('BAD_REQUEST');
  });

  it('recognises dependency outages through the cause chain', () => {
    expect(isDependencyUnavailable(Object.assign(new Error('x'), { cause: Object.assign(new Error('connect'), { code: 'ECONNREFUSED' }) }))).toBe(true);
    expect(isDependencyUnavailable(Object.assign(new Error('Invalid query'), { code: 'P2010', meta: {} , cause: { kind: 'DatabaseNotReachable' } }))).toBe(true);
    expect(isDependencyUnavailable(Object.assign(new Error('terminating connection'), { code: '57P01' }))).toBe(true);
    expect(isDependencyUnavailable(new TypeError('undefined is not a function'))).toBe(false);
    expect(isDependencyUnavailable(Object.assign(new Error('duplicate key'), { code: 'P2002' }))).toBe(false);
  });

  it('counts "too many clients" and the driver adapter\'s cause chain as unavailable, a data error not (one classifier for errors/ and db/)', () => {
    expect(isDependencyUnavailable(Object.assign(new Error('Too many database connections opened'), { code: 'P2037' }))).toBe(true);
    expect(isDependencyUnavailable(Object.assign(new Error('x'), { code: 'P2010', meta: { driverAdapterError: { cause: { originalCode: '53300', kind: 'postgres' } } } }))).toBe(true);
    expect(isDependencyUnavailable(Object.assign(new Error('sorry, too many clients already'), { code: '53300' }))).toBe(true);
    expect(isDependencyUnavailable(Object.assign(new Error('x'), { code: 'P2010', meta: { driverAdapterError: { cause: { originalCode: '22007', kind: 'postgres' } } } }))).toBe(false);
    expect(isDependencyUnavailable(new RangeError('Invalid time value'))).toBe(false);
  });
});

describe('the error contract on Open Inference Protocol routes', () => {
  it('keeps the OIP shape with a public code, scrubs internal text, and converts other bodies to it', () => {
    const own = JSON.parse(normalizeErrorBody(JSON.stringify({ error: 'no such model', code: 'NOT_FOUND', requestId: 'x' }), 404, 'r1', 'oip').body);
    expect(own).toEqual({ error: 'no such model', code: 'NOT_FOUND', requestId: 'r1' });
    const leaky = JSON.parse(normalizeErrorBody(JSON.stringify({ error: 'P2010: Invalid prisma.$queryRawUnsafe()', code: 'INTERNAL' }), 500, 'r2', 'oip').body);
    expect(leaky.error).not.toMatch(/prisma/i);
    const plain = normalizeErrorBody('Payload Too Large', 413, 'r3', 'oip');
    expect(JSON.parse(plain.body)).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', requestId: 'r3' });
    expect(typeof JSON.parse(plain.body).error).toBe('string');
    expect(JSON.parse(plain.body).errors).toBeUndefined();
  });
});

describe('the pre-parse comma bound', () => {
  it('counts the commas of a chunk', () => {
    expect(countCommas(Buffer.from(new Array(2000).fill(0).join(',')))).toBe(1999);
    // Commas inside strings count too: the bound is conservative.
    expect(countCommas(Buffer.from('"a,b",[1,2]'))).toBe(3);
  });
});
