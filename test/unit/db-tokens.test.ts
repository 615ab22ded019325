import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TOKEN_COLUMNS, TOKEN_COLUMN_LIST, TOKEN_SUMS, tokenSql, tokensOf, tokensOfKinds } from '../../src/db/tokens.js';
import { TOKEN_KINDS } from '../../src/domain/tokens.js';

/** The body of `CREATE TABLE <name> (...)` in the first migration. */
function tableBody(name: string): string {
  const sql = readFileSync(join(import.meta.dirname, '../../migrations/0001_usage_ledger.sql'), 'utf8');
  const start = sql.indexOf(`CREATE TABLE ${name} (`);
  expect(start).toBeGreaterThanOrEqual(0);
  return sql.slice(start, sql.indexOf(');', start));
}

describe('token-kind columns (src/db/tokens.ts)', () => {
  it('name a bigint column of both the ledger and the rollups for every token kind, in TOKEN_KINDS order', () => {
    const ledger = tableBody('usage_ledger');
    const rollups = tableBody('usage_rollups');
    for (const kind of TOKEN_KINDS) {
      const column = TOKEN_COLUMNS[kind];
      expect(ledger).toMatch(new RegExp(`\\n\\s*${column}\\s+bigint NOT NULL`));
      expect(rollups).toMatch(new RegExp(`\\n\\s*${column}\\s+bigint NOT NULL`));
    }
    expect(TOKEN_COLUMN_LIST).toBe('input_tokens, cache_read_tokens, cache_write_tokens, cache_write_1h_tokens, output_tokens, reasoning_tokens');
  });

  it('generate one SQL fragment per kind', () => {
    expect(tokenSql((c, k) => `${k}=${c}`, ' ')).toBe(
      'inputTokens=input_tokens cacheReadTokens=cache_read_tokens cacheWriteTokens=cache_write_tokens cacheWrite1hTokens=cache_write_1h_tokens outputTokens=output_tokens reasoningTokens=reasoning_tokens',
    );
    expect(TOKEN_SUMS.match(/::text AS /g)).toHaveLength(TOKEN_KINDS.length);
    expect(TOKEN_SUMS).toContain('coalesce(sum(cache_write_1h_tokens), 0)::text AS cache_write_1h_tokens');
  });

  it('map rows named by column or by kind to token usage, text or numbers, missing values as 0', () => {
    expect(tokensOf({ input_tokens: '9007199254740993', cache_read_tokens: 5, output_tokens: null })).toEqual({
      inputTokens: 9007199254740992,
      cacheReadTokens: 5,
      cacheWriteTokens: 0,
      cacheWrite1hTokens: 0,
      outputTokens: 0,
      reasoningTokens: 0,
    });
    expect(tokensOf(undefined)).toEqual({ inputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0, cacheWrite1hTokens: 0, outputTokens: 0, reasoningTokens: 0 });
    expect(tokensOfKinds({ inputTokens: '12', reasoningTokens: 3 })).toEqual({ inputTokens: 12, cacheReadTokens: 0, cacheWriteTokens: 0, cacheWrite1hTokens: 0, outputTokens: 0, reasoningTokens: 3 });
  });
});
