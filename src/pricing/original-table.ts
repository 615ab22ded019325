/**
 * The original specification's price table (USD per 1K tokens, input / output), kept as data so a
 * deployment can price exactly as the specification did: config `pricing.table: original`.
 * The default (`catalog`) prices from @pydantic/genai-prices, which follows the providers' current
 * list prices; the README's "The original contract" lists each difference and why.
 *
 * The rows are used like config overrides: a model's dated versions match too (`claude-3-opus`
 * prices `claude-3-opus-20240229`; the row named by a dated id, `claude-3-5-sonnet-20241022`,
 * prices that id only), config overrides win over them, and the ledger records them as price
 * source `override` with catalog version `original-spec`.
 */
import type { PriceOverride } from '../domain/pricing.js';

export const ORIGINAL_TABLE_VERSION = 'original-spec';

export const ORIGINAL_PRICE_TABLE: readonly PriceOverride[] = [
  { provider: 'openai', model: 'gpt-4', inputPer1k: '0.03', outputPer1k: '0.06' },
  { provider: 'openai', model: 'gpt-4-turbo', inputPer1k: '0.01', outputPer1k: '0.03' },
  { provider: 'openai', model: 'gpt-3.5-turbo', inputPer1k: '0.0015', outputPer1k: '0.002' },
  { provider: 'anthropic', model: 'claude-3-opus', inputPer1k: '0.015', outputPer1k: '0.075' },
  { provider: 'anthropic', model: 'claude-3-5-sonnet-20241022', inputPer1k: '0.003', outputPer1k: '0.015' },
  { provider: 'google', model: 'gemini-pro', inputPer1k: '0.0005', outputPer1k: '0.0015' },
];

export type PriceTableChoice = 'catalog' | 'original';

/**
 * The overrides the engine gets for a table choice: the config's own, then (with `original`) the
 * original table's rows for every model the config does not override.
 */
export function overridesFor(table: PriceTableChoice, configured: readonly PriceOverride[]): PriceOverride[] {
  if (table === 'catalog') return [...configured];
  const key = (o: PriceOverride) => `${o.provider.trim().toLowerCase()}/${o.model.trim().toLowerCase()}`;
  const taken = new Set(configured.map(key));
  return [...configured, ...ORIGINAL_PRICE_TABLE.filter((o) => !taken.has(key(o))).map((o) => ({ ...o, catalogVersion: ORIGINAL_TABLE_VERSION }))];
}
