import type { Config } from '../config/index.js';
import { PricingEngine } from '../domain/pricing.js';
import { loadCatalog } from './genai-catalog.js';
import { type PriceTableChoice, overridesFor } from './original-table.js';

export { ORIGINAL_PRICE_TABLE, ORIGINAL_TABLE_VERSION, type PriceTableChoice } from './original-table.js';

/**
 * The pricing engine for this configuration: the bundled catalog plus the config's overrides, and
 * with `pricing.table: original` the original specification's table in front of the catalog.
 */
export function createPricingEngine(config: { pricing: Pick<Config['pricing'], 'overrides'> & { table?: PriceTableChoice } }): PricingEngine {
  return new PricingEngine(loadCatalog(), overridesFor(config.pricing.table ?? 'catalog', config.pricing.overrides));
}
