/** A small dependency-free horizontal bar chart as SVG (for BENCHMARKS.md); bars may have a colour of their own, and a legend. */
export function barChart(title: string, bars: { label: string; value: number; color?: string }[], legend: { label: string; color: string }[] = []): string {
  const width = 720;
  const labelWidth = 230;
  const barHeight = 26;
  const gap = 10;
  const top = legend.length > 0 ? 62 : 40;
  const max = Math.max(...bars.map((b) => b.value), 1);
  const height = top + bars.length * (barHeight + gap) + 10;
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const rows = bars
    .map((b, i) => {
      const y = top + i * (barHeight + gap);
      const w = Math.max(1, ((width - labelWidth - 110) * b.value) / max);
      return [
        `<text x="${labelWidth - 8}" y="${y + 18}" text-anchor="end">${esc(b.label)}</text>`,
        `<rect x="${labelWidth}" y="${y}" width="${w.toFixed(1)}" height="${barHeight}" fill="${b.color ?? '#3b82f6'}"/>`,
        `<text x="${(labelWidth + w + 6).toFixed(1)}" y="${y + 18}">${Math.round(b.value).toLocaleString('en-US')}</text>`,
      ].join('');
    })
    .join('\n');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="13">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="24" font-size="15" font-weight="bold">${esc(title)}</text>
${legend.map((l, i) => `<rect x="${10 + i * 330}" y="36" width="12" height="12" fill="${l.color}"/><text x="${28 + i * 330}" y="47">${esc(l.label)}</text>`).join('')}
${rows}
</svg>
`;
}
