/**
 * The token-kind columns of `usage_ledger` and `usage_rollups`, and the SQL and row mapping over
 * them, all driven by TOKEN_KINDS: a new token kind is one entry here (and a migration), not an edit
 * of every SUM list and row mapper.
 */
import { TOKEN_KINDS, type TokenUsage } from '../domain/tokens.js';

export type TokenKind = (typeof TOKEN_KINDS)[number];

/** The column of each token kind (the compiler checks that every kind has one). */
export const TOKEN_COLUMNS = {
  inputTokens: 'input_tokens',
  cacheReadTokens: 'cache_read_tokens',
  cacheWriteTokens: 'cache_write_tokens',
  cacheWrite1hTokens: 'cache_write_1h_tokens',
  outputTokens: 'output_tokens',
  reasoningTokens: 'reasoning_tokens',
} as const satisfies Record<TokenKind, string>;

export type TokenColumn = (typeof TOKEN_COLUMNS)[TokenKind];

/** A row holding one value per token column (text or a number, as PostgreSQL returned it). */
export type TokenColumnsRow = { [C in TokenColumn]: string | number | null };

/**
 * One SQL fragment per token kind, in TOKEN_KINDS order, joined by `separator`: `each` gets the
 * kind's column and the kind itself, e.g. `tokenSql((c) => \`sum(${c}) AS ${c}\`)`.
 */
export function tokenSql(each: (column: TokenColumn, kind: TokenKind) => string, separator = ', '): string {
  return TOKEN_KINDS.map((k) => each(TOKEN_COLUMNS[k], k)).join(separator);
}

/** The token columns, comma separated: `input_tokens, cache_read_tokens, ...`. */
export const TOKEN_COLUMN_LIST = tokenSql((c) => c);

/** `coalesce(sum(<column>), 0)::text AS <column>` for each kind: a row's token sums, as text (bigint sums exceed 2^53). */
export const TOKEN_SUMS = tokenSql((c) => `coalesce(sum(${c}), 0)::text AS ${c}`);

/** The token usage of a row named by column (TOKEN_SUMS, a ledger or rollup row); a missing value is 0. */
export function tokensOf(row: Partial<TokenColumnsRow> | undefined): TokenUsage {
  const out = {} as TokenUsage;
  for (const k of TOKEN_KINDS) out[k] = Number(row?.[TOKEN_COLUMNS[k]] ?? 0);
  return out;
}

/** The token usage of a row named by kind (a stored JSON result, whose values may be text). */
export function tokensOfKinds(row: Partial<Record<TokenKind, string | number>>): TokenUsage {
  const out = {} as TokenUsage;
  for (const k of TOKEN_KINDS) out[k] = Number(row[k] ?? 0);
  return out;
}
