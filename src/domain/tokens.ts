/**
 * Token counts (the convention is documented in usage.ts). Its own module, free of zod, because the
 * budget workflows import it: every module a workflow imports is evaluated again for each workflow
 * the worker loads, and zod's schemas cost tens of milliseconds and about a megabyte per workflow.
 */

export const MAX_TOKENS = 1_000_000_000;
/** Events may be stamped up to a day ahead (clock skew between services), no further. */
export const MAX_FUTURE_MS = 24 * 60 * 60 * 1000;

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

