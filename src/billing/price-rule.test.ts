import { priceInEffect } from './price-book';

const T = '11111111-1111-4111-8111-111111111111';
const OTHER = '22222222-2222-4222-8222-222222222222';
const at = (iso: string) => new Date(iso);
const row = (id: string, tenantId: string | null, from: string, model = 'm') => ({ id, model, tenantId, effectiveFrom: at(from) });

describe('priceInEffect (the price rule: own price first, else the list price, the latest started by the hour)', () => {
  const prices = [
    row('list-1', null, '2026-01-01T00:00:00Z'),
    row('list-2', null, '2026-03-01T00:00:00Z'),
    row('own-1', T, '2026-02-01T00:00:00Z'),
    row('other', OTHER, '2026-01-15T00:00:00Z'),
    row('other-model', T, '2026-01-01T00:00:00Z', 'n'),
  ];
  it.each([
    ['2025-12-31T23:59:59Z', null],
    ['2026-01-10T00:00:00Z', 'list-1'], // the other tenant's own price never applies
    ['2026-02-01T00:30:00Z', 'own-1'], // within the hour a price starts: that price
    ['2026-01-31T23:59:59Z', 'list-1'],
    ['2026-04-01T00:00:00Z', 'own-1'], // a newer list price does not beat the tenant's own
  ])('at %s: %s', (when, id) => {
    expect(priceInEffect(prices, T, 'm', at(when))?.id ?? null).toBe(id);
  });
  it('a tenant with no own price gets the latest list price; another model is never matched', () => {
    expect(priceInEffect(prices, OTHER, 'm', at('2026-04-01T00:00:00Z'))?.id).toBe('other');
    expect(priceInEffect(prices, '33333333-3333-4333-8333-333333333333', 'm', at('2026-04-01T00:00:00Z'))?.id).toBe('list-2');
    expect(priceInEffect(prices, T, 'x', at('2026-04-01T00:00:00Z'))).toBeNull();
  });
});
