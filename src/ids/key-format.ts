/**
 * The API key format: `mg_<env>_` + 43 base62 characters (32 random bytes,
 * 256 bits) + a 6-character base62 CRC32 of everything before it, as GitHub's
 * tokens do. The checksum lets a secret scanner recognise a real key offline
 * and lets the gateway reject a mistyped key without a database lookup. Keys
 * are stored as SHA-256 hex; the plaintext exists only in the creation reply.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { crc32 } from 'node:zlib';

export type KeyEnvironment = 'live' | 'test';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const RANDOM_BYTES = 32;
/** ceil(256 / log2(62)) characters hold 32 bytes at a fixed width. */
const BODY_LENGTH = 43;
const CHECKSUM_LENGTH = 6;
/** Characters of the random part shown in listings (the display prefix). */
const DISPLAY_CHARS = 8;
const KEY_SHAPE = /^mg_(live|test)_([0-9A-Za-z]{43})([0-9A-Za-z]{6})$/;
/** A key's start: the display prefix, or any longer part of a key. */
const KEY_START = /^mg_(live|test)_[0-9A-Za-z]+$/;

/** Whether the text is the start of a modelgate key (a display prefix or more), as listings and the CLI name keys. */
export function isKeyStart(text: string): boolean {
  return KEY_START.test(text);
}

export const KEY_LENGTH = 'mg_live_'.length + BODY_LENGTH + CHECKSUM_LENGTH;

function toBase62(value: bigint, width: number): string {
  let out = '';
  let v = value;
  while (v > 0n) {
    out = ALPHABET[Number(v % 62n)] + out;
    v /= 62n;
  }
  return out.padStart(width, '0');
}

function checksum(head: string): string {
  return toBase62(BigInt(crc32(head)), CHECKSUM_LENGTH);
}

export interface GeneratedKey {
  /** The secret; show it once and forget it. */
  plaintext: string;
  hash: string;
  prefix: string;
}

export function generateKey(environment: KeyEnvironment): GeneratedKey {
  const body = toBase62(BigInt(`0x${randomBytes(RANDOM_BYTES).toString('hex')}`), BODY_LENGTH);
  const head = `mg_${environment}_${body}`;
  const plaintext = head + checksum(head);
  return { plaintext, hash: hashKey(plaintext), prefix: displayPrefix(plaintext) };
}

/** True when the string has the key shape and its checksum matches; no I/O. */
export function isWellFormedKey(candidate: string): boolean {
  const match = KEY_SHAPE.exec(candidate);
  if (!match) return false;
  const head = candidate.slice(0, candidate.length - CHECKSUM_LENGTH);
  return checksum(head) === match[3];
}

export function hashKey(plaintext: string): string {
  return createHash('sha256').update(plaintext, 'utf8').digest('hex');
}

/** "mg_live_AbC4dE5f": enough to recognise a key in a list, far too little to use it. */
export function displayPrefix(plaintext: string): string {
  const envEnd = plaintext.indexOf('_', 3) + 1;
  return plaintext.slice(0, envEnd + DISPLAY_CHARS);
}

/** Constant-time comparison of two hex digests of equal length. */
export function hashesEqual(a: string, b: string): boolean {
  const left = Buffer.from(a, 'hex');
  const right = Buffer.from(b, 'hex');
  return left.length === right.length && left.length > 0 && timingSafeEqual(left, right);
}
