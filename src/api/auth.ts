import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ApiKey } from './keys.js';

/**
 * API keys: from API_KEYS (and `api.keys` in the config file), or, when none is configured (local
 * runs), one generated `admin` key kept in `<dataDir>/api-key` (mode 0600) so it survives restarts.
 * The key itself is never logged.
 */
export function resolveApiKeys(configured: readonly ApiKey[], dataDir: string): { keys: ApiKey[]; keyFile: string | null } {
  if (configured.length > 0) return { keys: configured.map((k) => ({ ...k })), keyFile: null };
  const keyFile = join(dataDir, 'api-key');
  if (!existsSync(keyFile)) {
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(keyFile, `cg_${randomBytes(24).toString('base64url')}\n`, { mode: 0o600 });
    chmodSync(keyFile, 0o600);
  }
  return { keys: [{ scope: 'admin', key: readFileSync(keyFile, 'utf8').trim() }], keyFile };
}
