import { createHmac } from 'node:crypto';
import { SecretBox } from './secret-box';
import { generateSecret, signatureHeader, verifySignature } from './signing';
import { isPrivateAddress, validateWebhookUrl } from './url-guard';
import { thresholdEvents, type ThresholdLimit } from './webhook-events';

const quota = (usedBefore: number, usedAfter: number, limit = 10): ThresholdLimit => ({
  type: 'quota.threshold',
  tenantId: 't1',
  apiKeyId: null,
  name: 'tenant_monthly_compute_units',
  limit,
  usedBefore,
  usedAfter,
  period: '2026-12',
});

describe('thresholdEvents', () => {
  const all = () => [80, 90, 100];
  it('fires each percentage crossed by the change, and none already passed or not reached', () => {
    expect(thresholdEvents([quota(7, 8)], all).map((e) => e.threshold)).toEqual([80]);
    expect(thresholdEvents([quota(7, 12)], all).map((e) => e.threshold)).toEqual([80, 90, 100]);
    expect(thresholdEvents([quota(8, 8.9)], all)).toEqual([]);
    expect(thresholdEvents([quota(10, 11)], all)).toEqual([]);
  });
  it('keys each event by limit subject, period and percentage (the once-per-period constraint)', () => {
    expect(thresholdEvents([quota(0, 9)], all).map((e) => e.dedupeKey)).toEqual([
      'quota.threshold:t1:tenant_monthly_compute_units:2026-12:10:80',
      'quota.threshold:t1:tenant_monthly_compute_units:2026-12:10:90',
    ]);
    const budget: ThresholdLimit = { ...quota(0, 5, 5), type: 'budget.threshold', apiKeyId: 'k1', name: 'key_monthly_compute_units' };
    expect(thresholdEvents([budget], () => [100])[0]).toMatchObject({ dedupeKey: 'budget.threshold:k1:key_monthly_compute_units:2026-12:5:100', data: { apiKeyId: 'k1', used: 5, limitValue: 5 } });
  });
  it('ignores a zero limit and uses each tenant its own percentages', () => {
    expect(thresholdEvents([quota(0, 5, 0)], all)).toEqual([]);
    expect(thresholdEvents([quota(0, 5)], () => [50]).map((e) => e.threshold)).toEqual([50]);
  });
});

describe('signatures', () => {
  it('signs t.body with HMAC-SHA256 and verifies only the same secret, body and a fresh timestamp', () => {
    const secret = generateSecret();
    const body = JSON.stringify({ id: 'e1', type: 'key.revoked' });
    const now = 1_800_000_000;
    const header = signatureHeader(secret, body, now);
    expect(header).toBe(`t=${now},v1=${createHmac('sha256', secret).update(`${now}.${body}`).digest('hex')}`);
    expect(verifySignature(secret, body, header, 300, now + 10)).toBe(true);
    expect(verifySignature(secret, body + ' ', header, 300, now)).toBe(false);
    expect(verifySignature(generateSecret(), body, header, 300, now)).toBe(false);
    expect(verifySignature(secret, body, header, 300, now + 301)).toBe(false);
    expect(verifySignature(secret, body, 'garbage', 300, now)).toBe(false);
  });
});

describe('SecretBox', () => {
  it('round-trips, uses a fresh IV each time, and refuses a tampered or foreign ciphertext', () => {
    const box = new SecretBox(Buffer.alloc(32, 7));
    const a = box.encrypt('whsec_abc');
    expect(box.decrypt(a)).toBe('whsec_abc');
    expect(box.encrypt('whsec_abc')).not.toBe(a);
    const raw = Buffer.from(a, 'base64');
    raw[raw.length - 1] = (raw[raw.length - 1] ?? 0) ^ 1;
    expect(() => box.decrypt(raw.toString('base64'))).toThrow();
    expect(() => new SecretBox(Buffer.alloc(32, 8)).decrypt(a)).toThrow();
  });
});

describe('webhook URLs', () => {
  it('accepts http(s) and refuses other schemes and credentials with BAD_USER_INPUT', () => {
    expect(validateWebhookUrl('https://hooks.example.com/x', false)).toBe('https://hooks.example.com/x');
    for (const bad of ['ftp://example.com/', 'file:///etc/passwd', 'not a url', 'https://u:p@example.com/']) {
      expect(() => validateWebhookUrl(bad, true)).toThrow(expect.objectContaining({ code: 'BAD_USER_INPUT', extensions: expect.objectContaining({ field: 'url' }) }));
    }
  });
  it('refuses loopback, private and link-local targets unless allowed', () => {
    for (const host of ['127.0.0.1', '10.1.2.3', '192.168.0.1', '169.254.169.254', '[::1]', 'localhost']) {
      expect(() => validateWebhookUrl(`http://${host}/x`, false)).toThrow(expect.objectContaining({ code: 'BAD_USER_INPUT' }));
      expect(validateWebhookUrl(`http://${host}/x`, true)).toContain('/x');
    }
    expect(isPrivateAddress('::ffff:127.0.0.1')).toBe(true);
    expect(isPrivateAddress('93.184.216.34')).toBe(false);
  });
});
