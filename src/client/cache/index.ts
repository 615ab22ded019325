/** The wrappers' response cache: see response-cache.ts (behaviour) and canonical.ts (the key). */
export { type CacheEntry, createResponseCache, isNormalFinish, type LookupResult, ResponseCache, type ResponseCacheOptions } from './response-cache.js';
export { cacheKeyHash, canonicalBody, stableJson } from './canonical.js';
