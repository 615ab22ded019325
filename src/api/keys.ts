/**
 * Scoped API keys. A key is configured as `<scope>:<key>` (`ingest:cg_...`, `read:cg_...`,
 * `admin:cg_...`) or as a plain key, which means `admin` (how every key was configured before scopes).
 *
 * - `ingest`: POST /v1/usage, POST /v1/traces (OTLP) and POST /v1/authorize;
 * - `read`: GET budgets, reports, alerts, the OpenAPI document and /metrics;
 * - `admin`: everything, including PUT /v1/budgets/:scope and POST /v1/alerts/:id/ack.
 *
 * Keys are compared in constant time (SHA-256 digests of equal length, every configured key compared,
 * no early exit) and are never logged: logs and rate-limit counters name a key by `apiKeyId`, a
 * prefix of its SHA-256 digest.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

export const API_KEY_SCOPES = ['ingest', 'read', 'admin'] as const;
export type ApiKeyScope = (typeof API_KEY_SCOPES)[number];

/** What a route needs: `public` routes (GET /healthz) need no key at all. */
export type RouteScope = ApiKeyScope;

export interface ApiKey {
  scope: ApiKeyScope;
  key: string;
}

export const MIN_API_KEY_LENGTH = 16;

/** A word followed by a colon at the start of a key is read as a scope. */
const SCOPE_PREFIX_RE = /^([A-Za-z]+):/;

export type ApiKeyParseResult = { ok: true; value: ApiKey } | { ok: false; message: string };

/**
 * Parses one configured key. Error messages never contain the key (it is a secret), only the scope
 * word when there is one.
 */
export function parseApiKey(spec: string): ApiKeyParseResult {
  const text = spec.trim();
  const prefix = SCOPE_PREFIX_RE.exec(text);
  let scope: ApiKeyScope = 'admin';
  let key = text;
  if (prefix) {
    const word = prefix[1]!;
    if (!(API_KEY_SCOPES as readonly string[]).includes(word)) {
      return {
        ok: false,
        message: `unknown key scope ${JSON.stringify(word.slice(0, 20))}: expected ${API_KEY_SCOPES.join(', ')} (as "<scope>:<key>") or a plain key (admin)`,
      };
    }
    scope = word as ApiKeyScope;
    key = text.slice(prefix[0].length);
  }
  if (key.length < MIN_API_KEY_LENGTH) {
    return { ok: false, message: `expected a key of at least ${MIN_API_KEY_LENGTH} characters${prefix ? ` after "${scope}:"` : ''}` };
  }
  if (/[\s,]/.test(key)) return { ok: false, message: 'expected a key without spaces or commas' };
  return { ok: true, value: { scope, key } };
}

/**
 * Parses a comma-separated list (API_KEYS). Each problem names the key's position (1-based), never the key.
 * The same key listed twice (with the same or another scope) is refused: its scope would be ambiguous.
 */
export function parseApiKeyList(specs: readonly string[]): { keys: ApiKey[]; problems: string[] } {
  const keys: ApiKey[] = [];
  const problems: string[] = [];
  const seen = new Set<string>();
  specs.forEach((spec, i) => {
    const r = parseApiKey(spec);
    if (!r.ok) {
      problems.push(`key ${i + 1}: ${r.message}`);
      return;
    }
    if (seen.has(r.value.key)) {
      problems.push(`key ${i + 1}: the same key is listed more than once`);
      return;
    }
    seen.add(r.value.key);
    keys.push(r.value);
  });
  return { keys, problems };
}

/** Splits API_KEYS: comma-separated, blanks ignored. */
export function splitApiKeys(text: string): string[] {
  return text
    .split(',')
    .map((k) => k.trim())
    .filter(Boolean);
}

function digest(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

/** How logs and rate-limit counters name a key: the first 16 hex digits of its SHA-256 digest. */
export function apiKeyId(key: string): string {
  return digest(key).toString('hex').slice(0, 16);
}

/** True when a key of scope `have` may call a route that needs `need`. */
export function scopeAllows(have: ApiKeyScope, need: RouteScope): boolean {
  return have === 'admin' || have === need;
}

export interface AuthenticatedKey {
  /** `apiKeyId(key)`: safe to log. */
  id: string;
  scope: ApiKeyScope;
}

/** Checks a presented key against the configured ones, in time independent of the keys' contents. */
export class ApiKeyVerifier {
  private readonly entries: { digest: Buffer; id: string; scope: ApiKeyScope }[];

  /** A string is parsed as configured (`<scope>:<key>` or a plain admin key); an invalid one throws. */
  constructor(keys: readonly (string | ApiKey)[]) {
    this.entries = keys.map((k, i) => {
      let key: ApiKey;
      if (typeof k === 'string') {
        const parsed = parseApiKey(k);
        if (!parsed.ok) throw new Error(`API key ${i + 1}: ${parsed.message}`);
        key = parsed.value;
      } else {
        key = k;
      }
      const d = digest(key.key);
      return { digest: d, id: d.toString('hex').slice(0, 16), scope: key.scope };
    });
  }

  get size(): number {
    return this.entries.length;
  }

  verify(candidate: string | undefined): AuthenticatedKey | null {
    if (!candidate) return null;
    // Digests have one length whatever was sent, so the comparison time says nothing about the keys.
    const given = digest(candidate);
    let found: AuthenticatedKey | null = null;
    for (const entry of this.entries) {
      if (timingSafeEqual(entry.digest, given) && found === null) found = { id: entry.id, scope: entry.scope };
    }
    return found;
  }
}
