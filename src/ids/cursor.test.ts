import { decodeCursor, encodeCursor, InvalidCursorError } from './cursor';

const at = new Date('2026-10-01T00:00:00.123Z');
const base64url = (text: string) => Buffer.from(text, 'utf8').toString('base64url');
const refusal = expect.objectContaining({ code: 'BAD_USER_INPUT', extensions: { field: 'after', reason: 'INVALID_CURSOR' } });

describe('pagination cursors', () => {
  it('round-trip a position, an id holding "|" too (usage records are keyed by request ids)', () => {
    expect(decodeCursor(encodeCursor({ createdAt: at, id: 'req|1' }))).toEqual({ createdAt: at, id: 'req|1' });
    const uuid = '3f2b6c1e-6a55-4c52-9d0e-0c6f4c1e2a10';
    expect(decodeCursor(encodeCursor({ createdAt: at, id: uuid }))).toEqual({ createdAt: at, id: uuid });
  });

  it('still read the unversioned form the admin listings handed out before, so paging goes on across an upgrade', () => {
    expect(decodeCursor(base64url(`${at.toISOString()}|abc`))).toEqual({ createdAt: at, id: 'abc' });
  });

  it('refuse anything else with one coded error: BAD_USER_INPUT naming after, reason INVALID_CURSOR', () => {
    const garbage = ['nope', '', '!!nonsense', base64url('v1|not-a-date|x'), base64url('v1|2026-10-01|x'), base64url('1|x'), base64url(`v1|${at.toISOString()}|`), base64url(`${at.toISOString()}|a|b|c`)];
    for (const cursor of garbage) {
      expect(() => decodeCursor(cursor)).toThrow(InvalidCursorError);
      expect(() => decodeCursor(cursor)).toThrow(refusal);
    }
  });

  it('refuse a cursor longer than any one they make, before decoding it', () => {
    const long = encodeCursor({ createdAt: at, id: 'x'.repeat(400) });
    expect(() => decodeCursor(long)).toThrow(refusal);
  });
});
