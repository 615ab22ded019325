import { randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * API keys: from API_KEYS, or, when none is configured (local runs), one generated key kept in
 * `<dataDir>/api-key` (mode 0600) so it survives restarts. The key itself is never logged.
 */
export function resolveApiKeys(configured: readonly string[], dataDir: string): { keys: string[]; keyFile: string | null } {
  if (configured.length > 0) return { keys: [...configured], keyFile: null };
  const keyFile = join(dataDir, 'api-key');
  if (!existsSync(keyFile)) {
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(keyFile, `cg_${randomBytes(24).toString('base64url')}\n`, { mode: 0o600 });
    chmodSync(keyFile, 0o600);
  }
  return { keys: [readFileSync(keyFile, 'utf8').trim()], keyFile };
}

/** Constant-time comparison against every key. */
export function isValidApiKey(candidate: string | undefined, keys: readonly string[]): boolean {
  if (!candidate) return false;
  const given = Buffer.from(candidate);
  let ok = false;
  for (const key of keys) {
    const expected = Buffer.from(key);
    if (expected.length === given.length && timingSafeEqual(expected, given)) ok = true;
  }
  return ok;
}
