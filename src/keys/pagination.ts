/**
 * Keyset pagination over (createdAt desc, id desc), the order every admin
 * listing uses. Cursors are ids/cursor.ts's (a bad one is a BAD_USER_INPUT,
 * not a crash).
 */
import { BadInputError } from '../errors';
import { afterPosition, decodeCursor, encodeCursor, type CursorPosition } from '../ids/cursor';

export interface PageArgs {
  first?: number | null;
  after?: string | null;
}

export interface Page<T> {
  edges: { cursor: string; node: T }[];
  hasNextPage: boolean;
  hasPreviousPage: boolean;
}

export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 100;

export function pageSize(first: number | null | undefined): number {
  if (first === null || first === undefined) return DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(first) || first < 1 || first > MAX_PAGE_SIZE) {
    throw new BadInputError(`first must be between 1 and ${MAX_PAGE_SIZE}`, 'first');
  }
  return first;
}

/** The Prisma `where` fragment for rows after the cursor, and the ordering to use with it. */
export function afterCursor(after: string | null | undefined): { where: object; orderBy: object[] } {
  const orderBy = [{ createdAt: 'desc' }, { id: 'desc' }];
  if (!after) return { where: {}, orderBy };
  return { where: afterPosition(decodeCursor(after)), orderBy };
}

/** Turns `take: n + 1` rows into a page of at most n. */
export function toPage<T extends CursorPosition>(rows: T[], size: number, after: string | null | undefined): Page<T> {
  const nodes = rows.slice(0, size);
  return {
    edges: nodes.map((node) => ({ cursor: encodeCursor(node), node })),
    hasNextPage: rows.length > size,
    hasPreviousPage: Boolean(after),
  };
}
