/**
 * The model tier last advised in each conversation, so advice stays stable within one
 * (hysteresis, src/domain/advice.ts):
 *
 *   <prefix>advice:<userId>:<conversationId>   STRING premium | standard | economy, kept an hour
 *
 * `<prefix>` is the lease store's (`<keyPrefix>{lease}:`).
 */
import type { Redis } from 'ioredis';
import type { ModelTier } from '../domain/model-tiers.js';

const ADVICE_TTL_SECONDS = 3600;

export interface AdviceTiers {
  /** The tier last advised in the conversation (null: none, or not a tier). */
  last(userId: string, conversationId: string): Promise<ModelTier | null>;
  remember(userId: string, conversationId: string, tier: ModelTier): Promise<void>;
}

export function createAdviceTiers(redis: Redis, prefix: string): AdviceTiers {
  const key = (userId: string, conversationId: string) => `${prefix}advice:${userId}:${conversationId}`;
  return {
    async last(userId, conversationId) {
      const t = await redis.get(key(userId, conversationId));
      return t === 'premium' || t === 'standard' || t === 'economy' ? t : null;
    },
    async remember(userId, conversationId, tier) {
      await redis.set(key(userId, conversationId), tier, 'EX', ADVICE_TTL_SECONDS);
    },
  };
}
