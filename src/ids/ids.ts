/** The shape of the database's UUID primary keys (tenants, keys, events…): checked before a lookup, so a malformed id is a coded error or "unknown", never a database error. */
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
