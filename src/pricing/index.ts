import type { Config } from '../config/index.js';
import { PricingEngine } from '../domain/pricing.js';
import { loadCatalog } from './genai-catalog.js';

/** The pricing engine for this configuration: the bundled catalog plus the config's overrides. */
export function createPricingEngine(config: Pick<Config, 'pricing'>): PricingEngine {
  return new PricingEngine(loadCatalog(), config.pricing.overrides);
}
