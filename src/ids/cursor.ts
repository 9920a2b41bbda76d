/**
 * The one pagination cursor: an opaque base64url string naming a row's
 * keyset position (createdAt, id) in the newest-first order every
 * connection uses (tenants, keys, audit events, webhook deliveries, usage
 * records). A cursor that does not decode is InvalidCursorError, a
 * BAD_USER_INPUT naming `after` with reason INVALID_CURSOR, never a crash.
 */
import { BadInputError } from '../errors';

export interface CursorPosition {
  createdAt: Date;
  id: string;
}

/** Longer than any cursor encodeCursor makes (ids are UUIDs or request ids of at most 128 characters): not decoded. */
const MAX_CURSOR_LENGTH = 400;

/** `v1|<ISO time>|<id>`: the id last, so an id holding "|" still round-trips. */
const V1 = /^v1\|([^|]+)\|(.+)$/;
/** The unversioned `<ISO time>|<id>` the admin listings handed out before v1; still read, so a client paging across an upgrade goes on. */
const UNVERSIONED = /^([^|]+)\|([^|]+)$/;

export class InvalidCursorError extends BadInputError {
  constructor() {
    super('after is not a cursor this connection returned', 'after', { reason: 'INVALID_CURSOR' });
  }
}

export function encodeCursor(position: CursorPosition): string {
  return Buffer.from(`v1|${position.createdAt.toISOString()}|${position.id}`, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): CursorPosition {
  if (cursor.length > MAX_CURSOR_LENGTH) throw new InvalidCursorError();
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const match = V1.exec(text) ?? UNVERSIONED.exec(text);
  const iso = match?.[1] ?? '';
  const createdAt = new Date(iso);
  const id = match?.[2];
  // Only the exact ISO form encodeCursor writes: Date's lenient parse would read "1" as the year 2001.
  if (!id || Number.isNaN(createdAt.getTime()) || createdAt.toISOString() !== iso) throw new InvalidCursorError();
  return { createdAt, id };
}

/** The Prisma `where` fragment for the rows after a position in newest-first order (createdAt desc, id desc). */
export function afterPosition(position: CursorPosition) {
  return { OR: [{ createdAt: { lt: position.createdAt } }, { createdAt: position.createdAt, id: { lt: position.id } }] };
}
