import { API_KEY_STATUSES, isAccepted, keyStatus, keyStatusOf, type KeyLifetime } from './key-status';

const now = Date.UTC(2026, 11, 6, 12);
const minute = 60_000;
const key = (over: Partial<KeyLifetime> = {}): KeyLifetime => ({ revoked: false, expiresAt: null, graceUntil: null, ...over });

describe('API key status', () => {
  it('derives each status from revokedAt, graceUntil and expiresAt', () => {
    expect(keyStatus(key(), now)).toBe('ACTIVE');
    expect(keyStatus(key({ expiresAt: now + minute }), now)).toBe('ACTIVE');
    expect(keyStatus(key({ expiresAt: now }), now)).toBe('EXPIRED');
    expect(keyStatus(key({ revoked: true, expiresAt: now - minute, graceUntil: now + minute }), now)).toBe('REVOKED');
    expect(keyStatus(key({ graceUntil: now + minute }), now)).toBe('GRACE');
    expect(keyStatus(key({ graceUntil: now }), now)).toBe('ROTATED');
    expect(keyStatus(key({ graceUntil: now - minute, expiresAt: now - 2 * minute }), now)).toBe('ROTATED');
  });

  // The GraphQL status said GRACE here while the authenticator refused the key: rotation keeps the expiry.
  it('calls a rotated key past its expiry EXPIRED even inside its grace period, as the authenticator refuses it', () => {
    const rotated = key({ expiresAt: now - minute, graceUntil: now + minute });
    expect(keyStatus(rotated, now)).toBe('EXPIRED');
    expect(isAccepted(keyStatus(rotated, now))).toBe(false);
  });

  it('accepts exactly ACTIVE and GRACE keys', () => {
    expect(API_KEY_STATUSES.filter(isAccepted)).toEqual(['ACTIVE', 'GRACE']);
  });

  it('reads a database row the same way', () => {
    expect(keyStatusOf({ revokedAt: null, expiresAt: new Date(now - minute), graceUntil: new Date(now + minute) }, now)).toBe('EXPIRED');
    expect(keyStatusOf({ revokedAt: new Date(now), expiresAt: null, graceUntil: null }, now)).toBe('REVOKED');
  });
});
