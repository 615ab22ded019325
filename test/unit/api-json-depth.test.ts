import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_JSON_DEPTH, jsonNestingDepth } from '../../src/api/json-depth.js';

describe('jsonNestingDepth', () => {
  it('counts nested objects and arrays', () => {
    expect(jsonNestingDepth('1')).toBe(0);
    expect(jsonNestingDepth('"text"')).toBe(0);
    expect(jsonNestingDepth('{}')).toBe(1);
    expect(jsonNestingDepth('[1,2,3]')).toBe(1);
    expect(jsonNestingDepth('{"a":[1,{"b":[]}],"c":{}}')).toBe(4);
    expect(jsonNestingDepth('[[],[[]],[]]')).toBe(3);
  });

  it('ignores brackets inside strings, with escaped quotes and backslashes', () => {
    expect(jsonNestingDepth('{"a":"[[[{{{"}')).toBe(1);
    expect(jsonNestingDepth('{"a\\"[[":"\\"{{{"}')).toBe(1);
    expect(jsonNestingDepth('["\\\\",[["\\\\\\"]]"]]]')).toBe(3);
    expect(jsonNestingDepth('{"k":"\\u005b\\u007b"}')).toBe(1);
  });

  it('scans 100,000 levels without recursion, and stops early once past the limit', () => {
    const n = 100_000;
    const deep = '['.repeat(n) + ']'.repeat(n);
    expect(jsonNestingDepth(deep)).toBe(n);
    expect(jsonNestingDepth(deep, MAX_JSON_DEPTH)).toBe(MAX_JSON_DEPTH + 1);
    const objects = '{"a":'.repeat(n) + '1' + '}'.repeat(n);
    expect(jsonNestingDepth(objects, MAX_JSON_DEPTH)).toBe(MAX_JSON_DEPTH + 1);
  });

  it('gives some depth for malformed text without throwing (parsing refuses it afterwards)', () => {
    expect(jsonNestingDepth(']]]{')).toBe(1);
    expect(jsonNestingDepth('{"unterminated: [[[[')).toBe(1);
    expect(jsonNestingDepth('')).toBe(0);
  });

  it('agrees with the depth of the parsed value for any JSON value', () => {
    const depthOf = (v: unknown): number => {
      if (Array.isArray(v)) return 1 + Math.max(0, ...v.map(depthOf));
      if (v !== null && typeof v === 'object') return 1 + Math.max(0, ...Object.values(v).map(depthOf));
      return 0;
    };
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 12 }), (value) => {
        const text = JSON.stringify(value);
        expect(jsonNestingDepth(text)).toBe(depthOf(value));
      }),
      { numRuns: 500 },
    );
  });
});
