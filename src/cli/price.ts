import type { Config } from '../config/index.js';
import { ValidationError } from '../domain/errors.js';
import { type Currency, formatMoney, fromUsd, isCurrency } from '../domain/money.js';
import type { PriceResult } from '../domain/pricing.js';
import { MAX_FUTURE_MS, type TokenUsage, fromAnthropicUsage, fromOpenAIUsage, parseIsoTime, parseTokenUsage } from '../domain/usage.js';
import { createPricingEngine } from '../pricing/index.js';

export interface PriceCommandOptions {
  provider: string;
  model: string;
  usage: string;
  usageFormat: 'costguard' | 'openai' | 'anthropic';
  at?: string;
  currency: string;
}

export interface PriceCommandOutput {
  provider: string;
  model: string;
  occurredAt: string;
  usage: TokenUsage;
  priced: boolean;
  unpricedReason: string | null;
  breakdown: Record<string, { units: number; costUsd: string; amount: string }>;
  totalUsd: string;
  currency: Currency;
  rate: string;
  amount: string;
  display: string;
  price: (PriceResult & { priced: true })['price'] | null;
}

/** Prices one call for `costguard price`. Throws ValidationError naming each bad option. */
export function runPriceCommand(config: Config, opts: PriceCommandOptions, now: number): PriceCommandOutput {
  const issues: { path: string; message: string }[] = [];
  if (!opts.provider?.trim()) issues.push({ path: '--provider', message: 'must not be empty' });
  if (!opts.model?.trim()) issues.push({ path: '--model', message: 'must not be empty' });
  const currency = opts.currency.toUpperCase();
  if (!isCurrency(currency)) issues.push({ path: '--currency', message: `unknown currency ${JSON.stringify(opts.currency)}; expected USD, EUR, GBP, JPY or CNY` });
  let at = now;
  if (opts.at !== undefined) {
    at = parseIsoTime(opts.at);
    if (Number.isNaN(at)) issues.push({ path: '--at', message: `must be an ISO-8601 time with a time zone, got ${JSON.stringify(opts.at)}` });
    else if (at > now + MAX_FUTURE_MS) issues.push({ path: '--at', message: 'is more than a day in the future' });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(opts.usage);
  } catch (err) {
    issues.push({ path: '--usage', message: `is not valid JSON: ${(err as Error).message}` });
  }
  let usage: TokenUsage | undefined;
  if (raw !== undefined) {
    const shaped = opts.usageFormat === 'openai' ? fromOpenAIUsage(raw) : opts.usageFormat === 'anthropic' ? fromAnthropicUsage(raw) : raw;
    const parsed = parseTokenUsage(shaped, '--usage');
    if (parsed.ok) usage = parsed.value;
    else issues.push(...parsed.issues);
  }
  if (issues.length > 0 || !usage || !isCurrency(currency)) throw new ValidationError(issues, 'invalid price request');

  const engine = createPricingEngine(config);
  const result = engine.price({ provider: opts.provider, model: opts.model, occurredAtMs: at, usage });
  const convert = (usd: string) => fromUsd(usd, currency, config.exchangeRates);
  const breakdown: PriceCommandOutput['breakdown'] = {};
  if (result.priced) {
    for (const [kind, c] of Object.entries(result.components)) breakdown[kind] = { ...c, amount: convert(c.costUsd) };
  }
  const amount = convert(result.costUsd);
  return {
    provider: opts.provider.trim().toLowerCase(),
    model: opts.model.trim(),
    occurredAt: new Date(at).toISOString(),
    usage,
    priced: result.priced,
    unpricedReason: result.priced ? null : result.reason,
    breakdown,
    totalUsd: result.costUsd,
    currency,
    rate: config.exchangeRates[currency],
    amount,
    display: formatMoney(amount, currency),
    price: result.priced ? result.price : null,
  };
}

export function renderPriceText(out: PriceCommandOutput): string {
  const lines = [`${out.provider}/${out.model} at ${out.occurredAt}`];
  if (!out.priced) {
    lines.push(`UNPRICED: ${out.unpricedReason}`);
    return lines.join('\n');
  }
  const p = out.price!;
  lines.push(
    `price: ${p.source} ${p.provider}/${p.model} (${p.catalogVersion}${p.effectiveFrom ? `, from ${p.effectiveFrom}` : ''}` +
      `${p.tierStart !== null ? `, tier > ${p.tierStart} input tokens` : ''}${p.constraint ? `, ${p.constraint}` : ''})`,
  );
  const width = Math.max(...Object.keys(out.breakdown).map((k) => k.length), 5);
  for (const [kind, c] of Object.entries(out.breakdown)) {
    lines.push(`  ${kind.padEnd(width)}  ${String(c.units).padStart(12)} units  ${c.costUsd} USD`);
  }
  lines.push(`  ${'total'.padEnd(width)}  ${''.padStart(12)}        ${out.totalUsd} USD`);
  if (out.currency !== 'USD') lines.push(`  = ${out.amount} ${out.currency} at ${out.rate} ${out.currency}/USD`);
  lines.push(`display: ${out.display} (rounded half-even to 6 places)`);
  return lines.join('\n');
}
