/**
 * Token counts (the convention is documented in usage.ts). Its own module, free of zod, because the
 * budget workflows import it: every module a workflow imports is evaluated again for each workflow
 * the worker loads, and zod's schemas cost tens of milliseconds and about a megabyte per workflow.
 */

export const MAX_TOKENS = 1_000_000_000;
/** Events may be stamped up to a day ahead (clock skew between services), no further. */
export const MAX_FUTURE_MS = 24 * 60 * 60 * 1000;
/** Default: events older than 7 days are refused unless sent as a backfill (configurable). */
export const MAX_PAST_MS = 7 * 24 * 60 * 60 * 1000;
/** Even a backfill cannot go before 2000-01-01T00:00:00Z (a year-100 timestamp is a bug, not usage). */
export const MIN_OCCURRED_AT_MS = Date.UTC(2000, 0, 1);

export interface TokenUsage {
  inputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
  cacheWrite1hTokens: number;
  outputTokens: number;
  reasoningTokens: number;
}

export const TOKEN_KINDS = [
  'inputTokens',
  'cacheReadTokens',
  'cacheWriteTokens',
  'cacheWrite1hTokens',
  'outputTokens',
  'reasoningTokens',
] as const satisfies readonly (keyof TokenUsage)[];

export const ZERO_USAGE: Readonly<TokenUsage> = Object.freeze({
  inputTokens: 0,
  cacheReadTokens: 0,
  cacheWriteTokens: 0,
  cacheWrite1hTokens: 0,
  outputTokens: 0,
  reasoningTokens: 0,
});

