import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { usageEventSchema } from '../../src/api/schemas.js';
import { MAX_TOKENS, parseUsageEvent } from '../../src/domain/usage.js';

// POST /v1/usage validates events with the domain's check (parseUsageEvent), and the OpenAPI
// document describes them with a zod schema of the wire shape (src/api/schemas.ts). The document
// must never refuse what the API accepts: every event the check accepts, as JSON, fits the schema.
const NOW = Date.parse('2025-06-15T12:00:00.000Z');
const DAY_MS = 86_400_000;

const label = (max: number) =>
  fc.oneof(
    fc.constantFrom('openai', ' OpenAI ', 'gpt-4o', 'a', 'user:x', 'é', 'x'.repeat(max), ` ${'z'.repeat(max)} `),
    fc.string({ minLength: 1, maxLength: 12 }),
  );
const tokens = fc.oneof(fc.integer({ min: 0, max: 5000 }), fc.constantFrom(0, Math.floor(MAX_TOKENS / 3)));
const event = fc.record(
  {
    requestId: fc.oneof(fc.stringMatching(/^[A-Za-z0-9._:@/+=-]{1,20}$/), fc.constant('x'.repeat(200))),
    occurredAt: fc.oneof(
      fc.date({ min: new Date(NOW - 7 * DAY_MS), max: new Date(NOW), noInvalidDate: true }).map((d) => d.toISOString()),
      fc.constantFrom('2025-06-15T11:59:00.123+02:00', '2025-06-15T11:59Z', '2025-06-15T11:59:00+0200'),
    ),
    provider: label(100),
    model: label(200),
    userId: fc.oneof(fc.stringMatching(/^[A-Za-z0-9._@+=:/-]{1,20}$/), fc.constant(` ${'u'.repeat(200)} `)),
    taskType: label(100),
    team: fc.oneof(fc.stringMatching(/^[A-Za-z0-9._@+=:/-]{1,20}$/), fc.constant(null)),
    project: fc.oneof(fc.stringMatching(/^[A-Za-z0-9._@+=:/-]{1,20}$/), fc.constant(null)),
    tags: fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 5 }),
    // Inclusive totals (input >= cache reads + writes, writes >= 1h writes, output >= reasoning).
    usage: fc.record({ cacheReadTokens: tokens, cacheWriteTokens: tokens, outputTokens: tokens }).map((u) => ({
      inputTokens: u.cacheReadTokens + u.cacheWriteTokens + 10,
      cacheReadTokens: u.cacheReadTokens,
      cacheWriteTokens: u.cacheWriteTokens,
      cacheWrite1hTokens: Math.floor(u.cacheWriteTokens / 2),
      outputTokens: u.outputTokens,
      reasoningTokens: Math.floor(u.outputTokens / 3),
    })),
    metadata: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }),
    estimated: fc.boolean(),
    cacheHit: fc.boolean(),
  },
  { requiredKeys: ['provider', 'model', 'userId', 'usage'] },
);

describe('the OpenAPI usage event schema', () => {
  it('accepts every event POST /v1/usage accepts', () => {
    let accepted = 0;
    fc.assert(
      fc.property(event, (input) => {
        const wire: unknown = JSON.parse(JSON.stringify(input));
        if (!parseUsageEvent(wire, { now: NOW }).ok) return;
        accepted++;
        const doc = usageEventSchema.safeParse(wire);
        expect(doc.success ? [] : doc.error.issues).toEqual([]);
      }),
      { numRuns: 3000 },
    );
    expect(accepted).toBeGreaterThan(1000);
  });
});
