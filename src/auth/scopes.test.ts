import { ForbiddenError } from '../errors';
import { assertModelAllowed, hasScope } from './scopes';
import { credentialFrom } from './authenticator';

describe('scopes', () => {
  it('lets admin imply every scope and nothing else imply admin', () => {
    expect(hasScope({ scopes: ['admin'] }, 'inference')).toBe(true);
    expect(hasScope({ scopes: ['admin'] }, 'keys:manage')).toBe(true);
    expect(hasScope({ scopes: ['inference', 'usage:read', 'keys:manage'] }, 'admin')).toBe(false);
    expect(hasScope({ scopes: ['usage:read'] }, 'inference')).toBe(false);
  });

  it('enforces the model allowlist; an empty list allows every model', () => {
    expect(() => assertModelAllowed({ allowedModels: [], keyPrefix: 'mg_test_x' }, 'fashion-cnn')).not.toThrow();
    expect(() => assertModelAllowed({ allowedModels: ['fashion-cnn'], keyPrefix: 'mg_test_x' }, 'fashion-cnn')).not.toThrow();
    expect(() => assertModelAllowed({ allowedModels: ['fashion-cnn'], keyPrefix: 'mg_test_x' }, 'fashion-mlp')).toThrow(ForbiddenError);
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
