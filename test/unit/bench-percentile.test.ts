import { describe, expect, it } from 'vitest';
import { percentile, sorted } from '../../bench/lib.js';

describe('bench percentile (nearest rank, p in percent)', () => {
  const xs = sorted(Array.from({ length: 1000 }, (_, i) => 1000 - i)); // 1..1000, given in reverse

  it('gives the value below which p percent of the samples fall', () => {
    expect(percentile(xs, 50)).toBe(500);
    expect(percentile(xs, 99)).toBe(990);
    expect(percentile(xs, 99.9)).toBe(999);
    expect(percentile(xs, 100)).toBe(1000);
    expect(percentile(xs, 1)).toBe(10);
    expect(percentile(sorted([7]), 99)).toBe(7);
    expect(percentile(sorted([]), 99)).toBeNaN();
  });

  it('refuses a fraction, which would give about the 1st percentile', () => {
    expect(() => percentile(xs, 0.99)).toThrow(/in percent from 1 to 100/);
    expect(() => percentile(xs, 101)).toThrow(RangeError);
  });
});
