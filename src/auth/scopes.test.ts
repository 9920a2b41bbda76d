import { DomainError, ForbiddenError, NotFoundError } from '../errors';
import { assertModelAllowed, assertModelManageable, hasScope, modelAllowed, modelOwner } from './scopes';
import { credentialFrom } from './authenticator';

describe('scopes', () => {
  it('lets admin imply every scope and nothing else imply admin', () => {
    expect(hasScope({ scopes: ['admin'] }, 'inference')).toBe(true);
    expect(hasScope({ scopes: ['admin'] }, 'keys:manage')).toBe(true);
    expect(hasScope({ scopes: ['inference', 'usage:read', 'keys:manage'] }, 'admin')).toBe(false);
    expect(hasScope({ scopes: ['usage:read'] }, 'inference')).toBe(false);
  });

  const tenant = { tenantId: '00000000-0000-4000-8000-00000000000a', scopes: ['inference' as const] };

  it('enforces the model allowlist; an empty list allows every model', () => {
    expect(() => assertModelAllowed({ ...tenant, allowedModels: [] }, 'fashion-cnn')).not.toThrow();
    expect(() => assertModelAllowed({ ...tenant, allowedModels: ['fashion-cnn'] }, 'fashion-cnn')).not.toThrow();
    expect(() => assertModelAllowed({ ...tenant, allowedModels: ['fashion-cnn'] }, 'fashion-mlp')).toThrow(ForbiddenError);
  });

  it('reads a private model\'s owner from its name (a tenant id and a dot, any case); every other name is public', () => {
    expect(modelOwner('00000000-0000-4000-8000-00000000000A.fraud')).toBe('00000000-0000-4000-8000-00000000000a');
    expect(modelOwner('fashion-cnn')).toBeNull();
    expect(modelOwner('00000000-0000-4000-8000-00000000000a')).toBeNull();
    expect(modelOwner('x00000000-0000-4000-8000-00000000000a.fraud')).toBeNull();
  });

  it('answers another tenant\'s private model with the unknown-model NOT_FOUND, and lets its owner and admin see it', () => {
    const other = '00000000-0000-4000-8000-00000000000b.fraud';
    expect(modelAllowed({ ...tenant, allowedModels: [] }, other)).toBe(false);
    expect(modelAllowed({ ...tenant, allowedModels: [] }, '00000000-0000-4000-8000-00000000000a.fraud')).toBe(true);
    expect(modelAllowed({ ...tenant, scopes: ['admin'], allowedModels: [] }, other)).toBe(true);
    const refused = (() => {
      try {
        assertModelAllowed({ ...tenant, allowedModels: [] }, other);
      } catch (error) {
        return error as DomainError;
      }
      return null;
    })();
    expect(refused).toBeInstanceOf(NotFoundError);
    expect(refused?.message).toBe(`Model "${other}" is not in the repository`);
    expect(refused?.extensions).toMatchObject({ model: other });
  });

  it('lets models:manage manage only its own tenant\'s names; another tenant\'s is unknown, a public one forbidden', () => {
    const manager = { tenantId: tenant.tenantId, scopes: ['models:manage' as const] };
    expect(() => assertModelManageable(manager, `${tenant.tenantId}.fraud`)).not.toThrow();
    expect(() => assertModelManageable(manager, '00000000-0000-4000-8000-00000000000b.fraud')).toThrow(NotFoundError);
    expect(() => assertModelManageable(manager, 'fashion-cnn')).toThrow(ForbiddenError);
    expect(() => assertModelManageable(tenant, `${tenant.tenantId}.fraud`)).toThrow(ForbiddenError);
    expect(() => assertModelManageable({ ...tenant, scopes: ['admin'] }, 'fashion-cnn')).not.toThrow();
  });
});

describe('credentialFrom', () => {
  it('reads Authorization: Bearer (any case) and x-api-key, preferring Authorization', () => {
    expect(credentialFrom({ authorization: 'Bearer abc' })).toBe('abc');
    expect(credentialFrom({ authorization: 'bearer   abc ' })).toBe('abc');
    expect(credentialFrom({ 'x-api-key': ' abc ' })).toBe('abc');
    expect(credentialFrom({ authorization: 'Bearer one', 'x-api-key': 'two' })).toBe('one');
    expect(credentialFrom({})).toBeUndefined();
  });

  it('treats another scheme or an empty bearer as a malformed credential, not as no credential', () => {
    expect(credentialFrom({ authorization: 'Basic dXNlcjpwYXNz' })).toBe('');
    expect(credentialFrom({ authorization: 'Bearer' })).toBe('');
  });
});
