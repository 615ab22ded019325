import { describe, expect, it } from 'vitest';
import {
  DEFAULT_EXCHANGE_RATES,
  Dec,
  DISPLAY_DECIMALS,
  type ExchangeRates,
  addAmounts,
  compareAmounts,
  formatMoney,
  fromUsd,
  isDecimalString,
  normalizeAmount,
  parseAmount,
  toUsd,
} from '../../src/domain/money.js';

describe('normalizeAmount', () => {
  it.each([
    ['1.50', '1.5'],
    ['0.000', '0'],
    ['-0', '0'],
    ['-0.0', '0'],
    ['007.10', '7.1'],
    ['100', '100'],
    ['-3.50', '-3.5'],
    ['0.00021000', '0.00021'],
    ['123456789012345678901234567890.123456789012345678901234567890', '123456789012345678901234567890.12345678901234567890123456789'],
  ])('%s -> %s', (input, expected) => {
    expect(normalizeAmount(input)).toBe(expected);
  });

  it('never writes an exponent, even for tiny or huge Decimals', () => {
    expect(normalizeAmount(new Dec('1e-30'))).toBe('0.000000000000000000000000000001');
    expect(normalizeAmount(new Dec('1.5e30'))).toBe('1500000000000000000000000000000');
  });
});

describe('parseAmount / isDecimalString', () => {
  it.each(['1e5', 'abc', ' 1', '1 ', '', '1,5', '.5', '1.', '+1', 'NaN', 'Infinity', '0x10', '1_000'])(
    'rejects %j',
    (bad) => {
      expect(isDecimalString(bad)).toBe(false);
      expect(() => parseAmount(bad)).toThrow(RangeError);
      expect(() => parseAmount(bad)).toThrow(`not a decimal amount: ${JSON.stringify(bad)}`);
    },
  );

  it.each(['0', '12', '0.00021', '-3.5', '000.1'])('accepts %j', (good) => {
    expect(isDecimalString(good)).toBe(true);
    expect(parseAmount(good).toFixed()).toBe(new Dec(good).toFixed());
  });
});

describe('addAmounts', () => {
  it('adds exactly where floats do not', () => {
    expect(0.1 + 0.2).not.toBe(0.3); // the reason this module exists
    expect(addAmounts('0.1', '0.2')).toBe('0.3');
  });

  it('sums ten dimes to one dollar, and an empty sum to 0', () => {
    expect(addAmounts(...Array<string>(10).fill('0.1'))).toBe('1');
    expect(addAmounts()).toBe('0');
  });

  it('keeps every digit of very small and very large amounts', () => {
    expect(addAmounts('1000000000', '0.000000000000000000000001')).toBe('1000000000.000000000000000000000001');
    expect(addAmounts('0.00021', '0.00000015', '0.0105')).toBe('0.01071015');
  });

  it('cancels to a plain 0', () => {
    expect(addAmounts('1.5', '-1.50')).toBe('0');
  });

  it('sums a thousand micro-costs exactly', () => {
    const many = Array<string>(1_000).fill('0.000000123');
    expect(addAmounts(...many)).toBe('0.000123');
  });

  it('rejects a non-decimal operand instead of guessing', () => {
    expect(() => addAmounts('1', '1e-3')).toThrow(RangeError);
  });
});

describe('compareAmounts', () => {
  it('compares by value, not by text', () => {
    expect(compareAmounts('0.3', '0.30')).toBe(0);
    expect(compareAmounts('0.1', '0.09')).toBe(1);
    expect(compareAmounts('9', '10')).toBe(-1);
    expect(compareAmounts('-1', '0')).toBe(-1);
  });
});

describe('currency conversion with the default rates (EUR 0.92, GBP 0.79, JPY 149.50, CNY 7.24 per USD)', () => {
  it('has the specified default rates', () => {
    expect(DEFAULT_EXCHANGE_RATES).toEqual({ USD: '1', EUR: '0.92', GBP: '0.79', JPY: '149.50', CNY: '7.24' });
  });

  it.each([
    ['EUR', '100', '92'],
    ['GBP', '100', '79'],
    ['JPY', '100', '14950'],
    ['CNY', '100', '724'],
    ['USD', '100', '100'],
    ['EUR', '1.23', '1.1316'],
    ['JPY', '0.00021', '0.031395'],
    ['CNY', '0.000001', '0.00000724'],
  ] as const)('fromUsd to %s: %s USD -> %s', (currency, usd, expected) => {
    expect(fromUsd(usd, currency)).toBe(expected);
  });

  it.each([
    ['EUR', '92', '100'],
    ['GBP', '79', '100'],
    ['JPY', '14950', '100'],
    ['CNY', '724', '100'],
    ['USD', '12.50', '12.5'],
  ] as const)('toUsd from %s: %s -> %s USD', (currency, amount, expected) => {
    expect(toUsd(amount, currency)).toBe(expected);
  });

  it('cuts non-terminating quotients to 24 places, half-even', () => {
    expect(toUsd('1', 'EUR')).toBe('1.086956521739130434782609');
    expect(toUsd('1', 'GBP')).toBe('1.265822784810126582278481');
    expect(toUsd('1', 'JPY')).toBe('0.006688963210702341137124');
    expect(toUsd('1', 'CNY')).toBe('0.138121546961325966850829');
  });
});

describe('currency conversion with custom rates', () => {
  const rates: ExchangeRates = { USD: '1', EUR: '0.5', GBP: '0.8', JPY: '150', CNY: '7' };

  it('uses the given rates both ways', () => {
    expect(fromUsd('10', 'EUR', rates)).toBe('5');
    expect(toUsd('5', 'EUR', rates)).toBe('10');
    expect(fromUsd('2.5', 'JPY', rates)).toBe('375');
    expect(toUsd('375', 'JPY', rates)).toBe('2.5');
    expect(toUsd('1', 'CNY', rates)).toBe('0.142857142857142857142857');
  });

  it('rounds a tie at the 25th place to even', () => {
    const halves: ExchangeRates = { ...rates, EUR: '2' };
    expect(toUsd('0.000000000000000000000001', 'EUR', halves)).toBe('0'); // 0.5e-24 -> 0
    expect(toUsd('0.000000000000000000000003', 'EUR', halves)).toBe('0.000000000000000000000002'); // 1.5e-24 -> 2e-24
    expect(toUsd('0.000000000000000000000005', 'EUR', halves)).toBe('0.000000000000000000000002'); // 2.5e-24 -> 2e-24
  });
});

describe('formatMoney: the one display rounding rule (half-even, 6 places)', () => {
  it('shows 6 places by default', () => {
    expect(DISPLAY_DECIMALS).toBe(6);
    expect(formatMoney('1')).toBe('1.000000 USD');
    expect(formatMoney('0.00021')).toBe('0.000210 USD');
  });

  it.each([
    ['0.0000005', '0.000000 USD'],
    ['0.0000015', '0.000002 USD'],
    ['0.0000025', '0.000002 USD'],
    ['0.0000035', '0.000004 USD'],
    ['0.00000250000001', '0.000003 USD'],
    ['0.0000024999999', '0.000002 USD'],
    ['12.3456785', '12.345678 USD'],
    ['12.3456795', '12.345680 USD'],
    ['-0.0000015', '-0.000002 USD'],
  ])('%s -> %s', (amount, expected) => {
    expect(formatMoney(amount)).toBe(expected);
  });

  it('takes a currency and a number of places', () => {
    expect(formatMoney('92', 'EUR')).toBe('92.000000 EUR');
    expect(formatMoney('2.345', 'GBP', 2)).toBe('2.34 GBP');
    expect(formatMoney('2.355', 'GBP', 2)).toBe('2.36 GBP');
    expect(formatMoney('14950.5', 'JPY', 0)).toBe('14950 JPY');
    expect(formatMoney('14951.5', 'JPY', 0)).toBe('14952 JPY');
  });

  it('does not change the stored amount', () => {
    const amount = '0.0000025';
    formatMoney(amount);
    expect(addAmounts(amount, amount)).toBe('0.000005');
  });

  it('rejects a non-decimal amount', () => {
    expect(() => formatMoney('1e-7')).toThrow(RangeError);
  });
});
