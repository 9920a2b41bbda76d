import { crc32 } from 'node:zlib';
import { displayPrefix, generateKey, hashKey, hashesEqual, isWellFormedKey, KEY_LENGTH } from './key-format';

describe('key format', () => {
  it('makes mg_live_/mg_test_ keys of 43 base62 characters plus a 6-character checksum', () => {
    const live = generateKey('live');
    const test = generateKey('test');
    expect(live.plaintext).toMatch(/^mg_live_[0-9A-Za-z]{49}$/);
    expect(test.plaintext).toMatch(/^mg_test_[0-9A-Za-z]{49}$/);
    expect(live.plaintext).toHaveLength(KEY_LENGTH);
    expect(isWellFormedKey(live.plaintext)).toBe(true);
    expect(isWellFormedKey(test.plaintext)).toBe(true);
  });

  it('carries at least 190 bits of entropy in the random part (43 base62 chars of 32 random bytes)', () => {
    expect(43 * Math.log2(62)).toBeGreaterThan(190);
    const bodies = new Set(Array.from({ length: 2000 }, () => generateKey('live').plaintext.slice(8, 51)));
    expect(bodies.size).toBe(2000);
  });

  it('checksums the whole head with CRC32, so a scanner can verify a key offline', () => {
    const { plaintext } = generateKey('live');
    const head = plaintext.slice(0, -6);
    const alphabet = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
    let v = crc32(head);
    let encoded = '';
    while (v > 0) {
      encoded = alphabet[v % 62] + encoded;
      v = Math.floor(v / 62);
    }
    expect(plaintext.slice(-6)).toBe(encoded.padStart(6, '0'));
  });

  it('rejects a key with one character changed, a changed environment, or a wrong shape', () => {
    const { plaintext } = generateKey('live');
    for (let i = 8; i < plaintext.length; i += 7) {
      const swapped = plaintext.slice(0, i) + (plaintext[i] === 'x' ? 'y' : 'x') + plaintext.slice(i + 1);
      expect(isWellFormedKey(swapped)).toBe(false);
    }
    expect(isWellFormedKey(plaintext.replace('mg_live_', 'mg_test_'))).toBe(false);
    expect(isWellFormedKey(plaintext + 'a')).toBe(false);
    expect(isWellFormedKey('')).toBe(false);
    expect(isWellFormedKey(`Bearer ${plaintext}`)).toBe(false);
  });

  it('stores SHA-256 hex, shows a short display prefix, compares hashes', () => {
    const { plaintext, hash, prefix } = generateKey('test');
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(hash).toBe(hashKey(plaintext));
    expect(prefix).toBe(plaintext.slice(0, 16));
    expect(displayPrefix(plaintext)).toBe(prefix);
    expect(hashesEqual(hash, hashKey(plaintext))).toBe(true);
    expect(hashesEqual(hash, hashKey(generateKey('test').plaintext))).toBe(false);
    expect(hashesEqual(hash, '')).toBe(false);
  });
});
