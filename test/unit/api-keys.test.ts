import { describe, expect, it } from 'vitest';
import { ApiKeyVerifier, apiKeyId, parseApiKey, parseApiKeyList, scopeAllows, splitApiKeys } from '../../src/api/keys.js';

describe('parseApiKey', () => {
  it('reads <scope>:<key> for ingest, read and admin', () => {
    expect(parseApiKey('ingest:cg_abcdefghijklmnop')).toEqual({ ok: true, value: { scope: 'ingest', key: 'cg_abcdefghijklmnop' } });
    expect(parseApiKey(' read:cg_abcdefghijklmnop ')).toEqual({ ok: true, value: { scope: 'read', key: 'cg_abcdefghijklmnop' } });
    expect(parseApiKey('admin:cg_abcdefghijklmnop')).toEqual({ ok: true, value: { scope: 'admin', key: 'cg_abcdefghijklmnop' } });
  });

  it('reads a plain key (as configured before scopes) as admin', () => {
    expect(parseApiKey('cg_old_plain_key_0123')).toEqual({ ok: true, value: { scope: 'admin', key: 'cg_old_plain_key_0123' } });
    // a colon later in the key is part of the key
    expect(parseApiKey('cg_0123:456789abcdefgh')).toEqual({ ok: true, value: { scope: 'admin', key: 'cg_0123:456789abcdefgh' } });
  });

  it('refuses an unknown scope word and a short key, never echoing the key', () => {
    const unknown = parseApiKey('injest:cg_secret_0123456789');
    expect(unknown).toEqual({ ok: false, message: expect.stringContaining('unknown key scope "injest"') });
    expect(JSON.stringify(unknown)).not.toContain('cg_secret_0123456789');
    const short = parseApiKey('read:cg_short_key');
    expect(short).toEqual({ ok: false, message: 'expected a key of at least 16 characters after "read:"' });
    expect(parseApiKey('cg_short')).toEqual({ ok: false, message: 'expected a key of at least 16 characters' });
    expect(parseApiKey('read:cg_has space_0123456')).toEqual({ ok: false, message: 'expected a key without spaces or commas' });
  });
});

describe('parseApiKeyList / splitApiKeys', () => {
  it('parses API_KEYS, mixing scoped and plain keys, ignoring blanks', () => {
    const { keys, problems } = parseApiKeyList(splitApiKeys('ingest:cg_abc_0123456789abc, read:cg_def_0123456789abc,,cg_old_plain_key_0123 '));
    expect(problems).toEqual([]);
    expect(keys).toEqual([
      { scope: 'ingest', key: 'cg_abc_0123456789abc' },
      { scope: 'read', key: 'cg_def_0123456789abc' },
      { scope: 'admin', key: 'cg_old_plain_key_0123' },
    ]);
  });

  it('names each bad key by position, and refuses a key listed twice whatever its scopes', () => {
    const { keys, problems } = parseApiKeyList(['read:cg_same_0123456789ab', 'nope:cg_x_0123456789abcdef', 'ingest:cg_same_0123456789ab']);
    expect(keys).toEqual([{ scope: 'read', key: 'cg_same_0123456789ab' }]);
    expect(problems).toEqual([expect.stringMatching(/^key 2: unknown key scope "nope"/), 'key 3: the same key is listed more than once']);
  });
});

describe('scopes', () => {
  it('admin may call every route; ingest and read only their own', () => {
    expect(scopeAllows('admin', 'ingest')).toBe(true);
    expect(scopeAllows('admin', 'read')).toBe(true);
    expect(scopeAllows('admin', 'admin')).toBe(true);
    expect(scopeAllows('ingest', 'ingest')).toBe(true);
    expect(scopeAllows('ingest', 'read')).toBe(false);
    expect(scopeAllows('ingest', 'admin')).toBe(false);
    expect(scopeAllows('read', 'read')).toBe(true);
    expect(scopeAllows('read', 'ingest')).toBe(false);
    expect(scopeAllows('read', 'admin')).toBe(false);
  });
});

describe('ApiKeyVerifier', () => {
  const verifier = new ApiKeyVerifier(['ingest:cg_ingest_key_0123456', { scope: 'read', key: 'cg_read_key_012345678' }, 'cg_plain_admin_key_0123']);

  it('finds the scope of a configured key, and names it by a hash, never by the key', () => {
    expect(verifier.verify('cg_ingest_key_0123456')).toEqual({ id: apiKeyId('cg_ingest_key_0123456'), scope: 'ingest' });
    expect(verifier.verify('cg_read_key_012345678')).toEqual({ id: apiKeyId('cg_read_key_012345678'), scope: 'read' });
    expect(verifier.verify('cg_plain_admin_key_0123')?.scope).toBe('admin');
    const id = apiKeyId('cg_ingest_key_0123456');
    expect(id).toMatch(/^[0-9a-f]{16}$/);
    expect(id).not.toContain('cg_');
  });

  it('refuses unknown, empty and missing keys, a prefix of a key, and a key given with its scope word', () => {
    for (const candidate of [undefined, '', 'cg_ingest_key_012345', 'cg_ingest_key_01234567', 'ingest:cg_ingest_key_0123456', 'CG_INGEST_KEY_0123456']) {
      expect(verifier.verify(candidate)).toBeNull();
    }
  });

  it('refuses an invalid configured key at construction, without echoing it', () => {
    expect(() => new ApiKeyVerifier(['cg_fine_key_0123456789', 'bad:cg_secret_0123456789'])).toThrow(/^API key 2: unknown key scope "bad"/);
    try {
      new ApiKeyVerifier(['bad:cg_secret_0123456789']);
    } catch (err) {
      expect((err as Error).message).not.toContain('cg_secret_0123456789');
    }
  });
});
