/**
 * Exact money. Amounts cross every boundary as decimal strings ("0.00021"), are summed with
 * decimal.js, and are stored as NUMERIC. Nothing here ever goes through a JavaScript float.
 *
 * Rounding rule (the only place rounding happens): `formatMoney` rounds half-even to
 * DISPLAY_DECIMALS places for display. Stored and transmitted amounts are never rounded, except
 * amounts converted INTO USD from another currency, which are quotients and are cut to
 * CONVERSION_DECIMALS places (half-even), far below any price's precision.
 */
import { Decimal } from 'decimal.js';

/** A private Decimal constructor so no other module's global settings can change our arithmetic. */
export const Dec = Decimal.clone({ precision: 60, rounding: Decimal.ROUND_HALF_EVEN, toExpNeg: -40, toExpPos: 40 });
export type Dec = InstanceType<typeof Dec>;

export const DISPLAY_DECIMALS = 6;
export const CONVERSION_DECIMALS = 24;

export const SUPPORTED_CURRENCIES = ['USD', 'EUR', 'GBP', 'JPY', 'CNY'] as const;
export type Currency = (typeof SUPPORTED_CURRENCIES)[number];

/** Units of each currency per 1 USD (the original specification's defaults). */
export type ExchangeRates = Readonly<Record<Currency, string>>;
export const DEFAULT_EXCHANGE_RATES: ExchangeRates = Object.freeze({
  USD: '1',
  EUR: '0.92',
  GBP: '0.79',
  JPY: '149.50',
  CNY: '7.24',
});

const DECIMAL_RE = /^-?(?:\d+)(?:\.\d+)?$/;

export function isCurrency(value: string): value is Currency {
  return (SUPPORTED_CURRENCIES as readonly string[]).includes(value);
}

/** True for a plain decimal string such as "12", "0.00021" or "-3.5" (no exponent, no spaces). */
export function isDecimalString(value: string): boolean {
  return DECIMAL_RE.test(value);
}

/** Normalises a decimal string: no exponent, no trailing zeros ("1.50" -> "1.5", "0.000" -> "0"). */
export function normalizeAmount(value: string | Dec): string {
  const d = typeof value === 'string' ? parseAmount(value) : value;
  return d.isZero() ? '0' : d.toFixed();
}

export function parseAmount(value: string): Dec {
  if (!isDecimalString(value)) throw new RangeError(`not a decimal amount: ${JSON.stringify(value)}`);
  return new Dec(value);
}

export function addAmounts(...values: string[]): string {
  let sum = new Dec(0);
  for (const v of values) sum = sum.plus(parseAmount(v));
  return normalizeAmount(sum);
}

export function compareAmounts(a: string, b: string): number {
  return parseAmount(a).comparedTo(parseAmount(b));
}

/** Converts a USD amount into `currency` at `rates` (exact: a product of two finite decimals). */
export function fromUsd(amountUsd: string, currency: Currency, rates: ExchangeRates = DEFAULT_EXCHANGE_RATES): string {
  return normalizeAmount(parseAmount(amountUsd).times(parseAmount(rates[currency])));
}

/** Converts an amount in `currency` into USD (a quotient, cut to CONVERSION_DECIMALS places). */
export function toUsd(amount: string, currency: Currency, rates: ExchangeRates = DEFAULT_EXCHANGE_RATES): string {
  if (currency === 'USD') return normalizeAmount(amount);
  return normalizeAmount(
    parseAmount(amount).dividedBy(parseAmount(rates[currency])).toDecimalPlaces(CONVERSION_DECIMALS, Dec.ROUND_HALF_EVEN),
  );
}

/** The one rounding rule, for people: half-even to DISPLAY_DECIMALS places, with the currency code. */
export function formatMoney(amount: string, currency: Currency = 'USD', decimals = DISPLAY_DECIMALS): string {
  return `${parseAmount(amount).toFixed(decimals, Dec.ROUND_HALF_EVEN)} ${currency}`;
}
