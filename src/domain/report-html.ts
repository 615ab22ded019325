/**
 * The report as one self-contained HTML page: the email body and `GET /v1/reports/:kind/:period.html`.
 * Inline styles and inline SVG only (mail clients drop <style> blocks and external images), no
 * scripts, no dependencies. Every string that comes from data (model names, user ids, task types,
 * incident titles) goes through `escapeHtml`: a user id is attacker-controlled input.
 *
 * Charts: cost by hour (daily; by day for monthly), one <rect class="bar"> per bucket WITH usage
 * (an empty hour draws no bar), and cost by provider as horizontal bars. Bar lengths are floats
 * for pixels only; the amounts shown are the exact decimals, rounded once by formatMoney's rule.
 */
import { Dec, parseAmount } from './money.js';
import { type Report, reportSummary, reportTitle } from './report.js';

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

function usd(amount: string, places = 6): string {
  return `$${parseAmount(amount).toFixed(places, Dec.ROUND_HALF_EVEN)}`;
}

/** `length * amount / max`, for pixels (a float is fine here: it is a drawing, not money). */
function scale(amount: string, max: Dec, length: number): number {
  if (max.isZero()) return 0;
  return parseAmount(amount).dividedBy(max).times(length).toDecimalPlaces(2, Dec.ROUND_HALF_EVEN).toNumber();
}

const CELL = 'padding:4px 8px;border-bottom:1px solid #e5e7eb;text-align:left';
const NUM = 'padding:4px 8px;border-bottom:1px solid #e5e7eb;text-align:right;font-variant-numeric:tabular-nums';

function table(caption: string, headers: string[], rows: string[][], numeric: boolean[]): string {
  if (rows.length === 0) return '';
  const head = headers.map((h, i) => `<th style="${numeric[i] ? NUM : CELL}">${escapeHtml(h)}</th>`).join('');
  const body = rows
    .map((r) => `<tr>${r.map((c, i) => `<td style="${numeric[i] ? NUM : CELL}">${escapeHtml(c)}</td>`).join('')}</tr>`)
    .join('\n');
  return `<h2 style="font-size:16px;margin:24px 0 8px">${escapeHtml(caption)}</h2>\n<table style="border-collapse:collapse;width:100%;font-size:13px"><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

/** Vertical bars, one per bucket with usage; `data-bucket` carries the label for tests and tools. */
export function renderSeriesSvg(r: Report): string {
  const buckets = r.series.buckets;
  const width = 720;
  const height = 200;
  const top = 10;
  const bottom = 30;
  const left = 8;
  const plot = height - top - bottom;
  const slot = (width - 2 * left) / Math.max(buckets.length, 1);
  const max = buckets.reduce((m, b) => Dec.max(m, parseAmount(b.costUsd)), new Dec(0));
  const bars: string[] = [];
  const labels: string[] = [];
  buckets.forEach((b, i) => {
    const x = left + i * slot;
    const every = r.series.unit === 'hour' ? 3 : 5;
    if (i % every === 0) {
      const text = r.series.unit === 'hour' ? b.label.slice(0, 2) : b.label.slice(8, 10);
      labels.push(`<text x="${(x + slot / 2).toFixed(1)}" y="${height - 12}" font-size="10" text-anchor="middle" fill="#6b7280">${escapeHtml(text)}</text>`);
    }
    if (b.calls === 0 && parseAmount(b.costUsd).isZero()) return;
    // A bucket with usage is always visible, even when its cost is tiny (or unpriced: zero).
    const h = Math.max(scale(b.costUsd, max, plot), 1);
    bars.push(
      `<rect class="bar" data-bucket="${escapeHtml(b.label)}" x="${(x + 1).toFixed(1)}" y="${(top + plot - h).toFixed(2)}" width="${Math.max(slot - 2, 1).toFixed(1)}" height="${h.toFixed(2)}" fill="#2563eb"><title>${escapeHtml(`${b.label}: ${usd(b.costUsd)} (${b.calls} calls)`)}</title></rect>`,
    );
  });
  const what = r.series.unit === 'hour' ? 'hour' : 'day';
  return [
    `<svg class="chart chart-${what}" xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="Cost by ${what}">`,
    `<line x1="${left}" y1="${top + plot}" x2="${width - left}" y2="${top + plot}" stroke="#9ca3af" stroke-width="1"/>`,
    ...bars,
    ...labels,
    '</svg>',
  ].join('\n');
}

/** Horizontal bars, one per provider, longest first. */
export function renderProviderSvg(r: Report): string {
  const rows = r.byProvider;
  const rowHeight = 22;
  const width = 720;
  const labelWidth = 160;
  const valueWidth = 120;
  const height = Math.max(rows.length, 1) * rowHeight + 8;
  const max = rows.reduce((m, p) => Dec.max(m, parseAmount(p.costUsd)), new Dec(0));
  const span = width - labelWidth - valueWidth;
  const parts = rows.map((p, i) => {
    const y = 4 + i * rowHeight;
    const w = Math.max(scale(p.costUsd, max, span), 1);
    return [
      `<text x="0" y="${y + 15}" font-size="12" fill="#111827">${escapeHtml(p.key)}</text>`,
      `<rect class="provider-bar" data-provider="${escapeHtml(p.key)}" x="${labelWidth}" y="${y + 3}" width="${w.toFixed(2)}" height="${rowHeight - 8}" fill="#059669"/>`,
      `<text x="${(labelWidth + w + 6).toFixed(2)}" y="${y + 15}" font-size="12" fill="#374151">${escapeHtml(`${usd(p.costUsd)} (${p.sharePct}%)`)}</text>`,
    ].join('');
  });
  return [
    `<svg class="chart chart-provider" xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="Cost by provider">`,
    ...parts,
    '</svg>',
  ].join('\n');
}

function signed(n: number | null): string {
  return n === null ? 'n/a' : `${n > 0 ? '+' : ''}${n}%`;
}

export function renderReportHtml(r: Report): string {
  const title = reportTitle(r);
  const headline: [string, string][] = [
    ['Total cost', usd(r.totals.costUsd)],
    ['Calls', String(r.totals.calls)],
    ['Average per call', usd(r.totals.avgCostPerCallUsd)],
    ['Tokens', String(r.totals.totalTokens)],
    [`Change vs ${r.previous.period}`, `${signed(r.change.costPct)} cost (${usd(r.previous.costUsd)} before), ${signed(r.change.callsPct)} calls`],
  ];
  if (r.totals.unpricedCalls > 0) headline.push(['Unpriced calls', String(r.totals.unpricedCalls)]);
  // Cost avoided, shown apart: it is in neither the total cost nor the calls.
  if ((r.savedByCache?.hits ?? 0) > 0) headline.push(['Saved by the cache', `${usd(r.savedByCache.usd)} (${r.savedByCache.hits} requests answered from it)`]);
  const sections: string[] = [];
  sections.push(
    `<table class="headline" style="border-collapse:collapse;font-size:14px">${headline
      .map(([k, v]) => `<tr><th style="${CELL}">${escapeHtml(k)}</th><td style="${NUM}">${escapeHtml(v)}</td></tr>`)
      .join('')}</table>`,
  );
  if (r.empty) {
    sections.push(`<p class="empty" style="font-size:14px">No LLM usage was recorded in this period.</p>`);
  } else {
    sections.push(`<h2 style="font-size:16px;margin:24px 0 8px">Cost by ${r.series.unit}</h2>\n${renderSeriesSvg(r)}`);
    sections.push(`<h2 style="font-size:16px;margin:24px 0 8px">Cost by provider</h2>\n${renderProviderSvg(r)}`);
    const breakdown = (caption: string, first: string, rows: Report['byProvider']) =>
      table(
        caption,
        [first, 'Cost', 'Share', 'Calls', 'Avg per call', 'Tokens'],
        rows.map((x) => [x.key, usd(x.costUsd), `${x.sharePct}%`, String(x.calls), usd(x.avgCostPerCallUsd), String(x.totalTokens)]),
        [false, true, true, true, true, true],
      );
    sections.push(breakdown('By provider', 'Provider', r.byProvider));
    sections.push(
      table(
        'By model',
        ['Model', 'Tier', 'Cost', 'Share', 'Calls', 'Avg per call'],
        r.byModel.map((m) => [m.key, m.tier ?? '-', usd(m.costUsd), `${m.sharePct}%`, String(m.calls), usd(m.avgCostPerCallUsd)]),
        [false, false, true, true, true, true],
      ),
    );
    sections.push(breakdown('By task type', 'Task type', r.byTaskType));
    sections.push(breakdown(`Top ${r.topUsers.length} users`, 'User', r.topUsers));
    sections.push(
      table(
        `By ${r.series.unit}`,
        [r.series.unit === 'hour' ? 'Hour' : 'Day', 'Cost', 'Calls'],
        r.series.buckets.filter((b) => b.calls > 0).map((b) => [b.label, usd(b.costUsd), String(b.calls)]),
        [false, true, true],
      ),
    );
    if (r.byHourOfDay) {
      sections.push(
        table(
          'By hour of day',
          ['Hour', 'Cost', 'Calls'],
          r.byHourOfDay.filter((h) => h.calls > 0).map((h) => [h.label, usd(h.costUsd), String(h.calls)]),
          [false, true, true],
        ),
      );
    }
  }
  sections.push(
    table(
      'Budgets',
      ['Scope', 'Period', 'Budget', 'Spent', 'Used'],
      r.budgets.map((b) => [b.scope, b.period, usd(b.amountUsd, 2), usd(b.spentUsd), `${b.usagePct}%`]),
      [false, false, true, true, true],
    ),
  );
  sections.push(
    r.incidents.length === 0
      ? `<h2 style="font-size:16px;margin:24px 0 8px">Open incidents</h2>\n<p class="incidents-none">None.</p>`
      : table(
          'Open incidents',
          ['Level', 'Scope', 'Title', 'Status', 'Opened'],
          r.incidents.map((i) => [i.level.toUpperCase(), i.scope, i.title, i.status, i.openedAt]),
          [false, false, false, false, false],
        ),
  );
  if (r.recommendations.length > 0) {
    sections.push(
      `<h2 style="font-size:16px;margin:24px 0 8px">Recommendations</h2>\n<ul class="recommendations" style="font-size:14px">\n${r.recommendations
        .map((x) => `<li data-kind="${escapeHtml(x.kind)}" data-rule="${escapeHtml(x.rule)}">${escapeHtml(x.message)} <span style="color:#6b7280">(rule: ${escapeHtml(x.rule)})</span></li>`)
        .join('\n')}\n</ul>`,
    );
  }
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    `<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escapeHtml(title)}</title></head>`,
    '<body style="font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;color:#111827;max-width:760px;margin:0 auto;padding:16px">',
    `<h1 style="font-size:20px">${escapeHtml(title)}</h1>`,
    `<p class="summary" style="font-size:14px;color:#374151">${escapeHtml(reportSummary(r))}</p>`,
    ...sections.filter(Boolean),
    `<p style="font-size:11px;color:#6b7280">${escapeHtml(`${r.periodStart} to ${r.periodEnd} (${r.hours} hours). Generated ${r.generatedAt} by Cost Guard. Amounts in USD, rounded half-even for display.`)}</p>`,
    '</body>',
    '</html>',
    '',
  ].join('\n');
}
