import { createHmac } from 'node:crypto';
import { SecretBox } from './secret-box';
import { generateSecret, signatureHeader, verifySignature } from './signing';
import { assertPublicTarget, isPrivateAddress, PrivateTargetError, validateWebhookUrl } from './url-guard';
import { failureClass } from './dispatcher';
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
  it('judges NAT64 (64:ff9b::/96) and IPv4-mapped addresses by the IPv4 address inside', () => {
    for (const inner of ['127.0.0.1', '10.1.2.3', '172.16.0.1', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0']) {
      expect({ inner, nat64: isPrivateAddress(`64:ff9b::${inner}`), mapped: isPrivateAddress(`::ffff:${inner}`) }).toEqual({ inner, nat64: true, mapped: true });
    }
    expect(isPrivateAddress('64:ff9b::a9fe:a9fe')).toBe(true); // 169.254.169.254 in hex groups
    expect(isPrivateAddress('::ffff:7f00:1')).toBe(true);
    // A public IPv4 host reached through DNS64/NAT64 stays deliverable.
    expect(isPrivateAddress('64:ff9b::93.184.216.34')).toBe(false);
    expect(isPrivateAddress('64:ff9b::5db8:d822')).toBe(false);
  });
  it('refuses outright the other forms that embed an IPv4 address, whatever they embed', () => {
    const forms: Record<string, string[]> = {
      'local-use NAT64 64:ff9b:1::/48': ['64:ff9b:1::a00:1', '64:ff9b:1::5db8:d822'],
      '6to4 2002::/16': ['2002:a00:1::1', '2002:7f00:1::', '2002:5db8:d822::1'],
      'Teredo 2001::/32': ['2001:0:4136:e378:8000:63bf:3fff:fdd2', '2001::1'],
      'IPv4-compatible ::/96': ['::10.0.0.1', '::93.184.216.34', '::', '::1'],
      'IPv4-translated ::ffff:0:0:0/96': ['::ffff:0:a00:1', '::ffff:0:93.184.216.34'],
    };
    for (const [form, addresses] of Object.entries(forms)) {
      for (const address of addresses) expect({ form, address, refused: isPrivateAddress(address) }).toEqual({ form, address, refused: true });
      expect(() => validateWebhookUrl(`http://[${addresses[0]}]/x`, false)).toThrow(expect.objectContaining({ code: 'BAD_USER_INPUT' }));
    }
    expect(isPrivateAddress('fe80::1%eth0')).toBe(true);
    expect(isPrivateAddress('2606:4700::1111')).toBe(false);
    expect(() => validateWebhookUrl('http://[64:ff9b::10.0.0.1]/x', false)).toThrow(expect.objectContaining({ code: 'BAD_USER_INPUT' }));
    expect(() => validateWebhookUrl('http://localhost./x', false)).toThrow(expect.objectContaining({ code: 'BAD_USER_INPUT' }));
    expect(validateWebhookUrl('http://[64:ff9b::93.184.216.34]/x', false)).toBe('http://[64:ff9b::5db8:d822]/x');
  });
});

describe('delivery failure classes', () => {
  const fetchFailed = (code: string, message = `connect ${code} 10.9.8.7:443`) => new TypeError('fetch failed', { cause: Object.assign(new Error(message), { code }) });
  it('names a class, never the error text with its hosts and addresses', async () => {
    const refused = await assertPublicTarget('http://[64:ff9b::a00:1]:8080/x', false).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(PrivateTargetError);
    expect(String(refused)).toContain('a00:1'); // the detail, for the operator's log
    expect(failureClass(refused)).toBe('address not allowed');
    expect(failureClass(Object.assign(new Error('getaddrinfo ENOTFOUND db.internal.corp'), { code: 'ENOTFOUND' }))).toBe('DNS lookup failed');
    expect(failureClass(fetchFailed('EAI_AGAIN', 'getaddrinfo EAI_AGAIN hooks.example'))).toBe('DNS lookup failed');
    expect(failureClass(fetchFailed('ECONNREFUSED'))).toBe('connection refused');
    expect(failureClass(fetchFailed('ECONNRESET'))).toBe('connection reset');
    expect(failureClass(fetchFailed('UND_ERR_CONNECT_TIMEOUT'))).toBe('timed out');
    expect(failureClass(new DOMException('The operation was aborted due to timeout', 'TimeoutError'))).toBe('timed out');
    expect(failureClass(fetchFailed('EHOSTUNREACH'))).toBe('host unreachable');
    expect(failureClass(fetchFailed('CERT_HAS_EXPIRED', 'certificate has expired'))).toBe('TLS handshake failed');
    expect(failureClass(fetchFailed('ERR_TLS_CERT_ALTNAME_INVALID', "Hostname/IP does not match certificate's altnames: IP: 10.0.0.1"))).toBe('TLS handshake failed');
    expect(failureClass(new Error('something else at 10.0.0.1'))).toBe('connection failed');
  });
  it('skips the DNS lookup when private addresses are allowed', async () => {
    await expect(assertPublicTarget('http://no-such-host.invalid/x', true)).resolves.toBeUndefined();
    await expect(assertPublicTarget('http://no-such-host.invalid/x', false)).rejects.toMatchObject({ code: 'ENOTFOUND' });
  });
});
