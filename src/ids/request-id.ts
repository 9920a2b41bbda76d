/**
 * Which client-chosen request id (x-request-id, header or gRPC metadata) the
 * gateway takes; otherwise it makes one. Both doors use this one rule.
 */
const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/** A modelgate key's shape anywhere in a value (mg_live_… / mg_test_…). */
const KEY_SHAPED = /mg_(live|test)_/i;

/**
 * The caller's id when it is sane, else null. A key-shaped id is never
 * taken: it would be echoed, logged, traced and stored as the usage record's
 * id (a client that put its key there by mistake would leak it everywhere).
 */
export function acceptedRequestId(value: unknown): string | null {
  return typeof value === 'string' && REQUEST_ID_PATTERN.test(value) && !KEY_SHAPED.test(value) ? value : null;
}
