/**
 * Loads the price catalog bundled with `@pydantic/genai-prices` (no network: the package's
 * remote-update mechanism is never enabled).
 *
 * The package exposes providers one at a time (`findProvider`) but no list of their ids, so the ids
 * are read from the top level of its bundled data and every provider object then comes from the
 * public `findProvider` API. If a new package version changes its bundle layout, loading fails
 * loudly here (and the catalog cross-check test fails) rather than silently pricing nothing.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { findProvider } from '@pydantic/genai-prices';
import { type Catalog, type RawProvider, buildCatalog } from '../domain/catalog.js';

const require = createRequire(import.meta.url);
const PROVIDER_ID_RE = /^ {2}\{\n {4}id: "([^"]+)",$/gm;

let cached: Catalog | undefined;

/** The package's ES module bundle (dist/index.js), found from its CommonJS entry beside it. */
function bundlePath(): string {
  return join(dirname(require.resolve('@pydantic/genai-prices')), 'index.js');
}

export function genaiPricesVersion(): string {
  const pkg = JSON.parse(readFileSync(join(dirname(bundlePath()), '..', 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

/** The provider ids in the bundled data, in catalog order. */
export function bundledProviderIds(): string[] {
  const path = bundlePath();
  const source = readFileSync(path, 'utf8');
  const ids = [...source.matchAll(PROVIDER_ID_RE)].map((m) => m[1]!);
  if (ids.length < 10) {
    throw new Error(
      `@pydantic/genai-prices@${genaiPricesVersion()}: found ${ids.length} provider ids in ${path}; ` +
        'the bundle layout changed, update src/pricing/genai-catalog.ts',
    );
  }
  return ids;
}

/** The raw provider objects, exactly as the package's own calcPrice sees them. */
export function loadRawProviders(): RawProvider[] {
  return bundledProviderIds().map((id) => {
    const provider = findProvider({ providerId: id });
    if (!provider || provider.id !== id) throw new Error(`@pydantic/genai-prices: provider "${id}" not found through findProvider`);
    return provider as unknown as RawProvider;
  });
}

/** The exact catalog (built once per process). */
export function loadCatalog(): Catalog {
  cached ??= buildCatalog(loadRawProviders(), `genai-prices@${genaiPricesVersion()}`);
  return cached;
}
