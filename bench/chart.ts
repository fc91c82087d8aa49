// latency.png: median and p99 latency by concurrency for every contender, drawn as SVG here
// and rendered by Debian's rsvg-convert (librsvg2-bin), which brings a font with it through
// fontconfig: no native npm module and no hand-made rasteriser.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Contender } from './report.js';

/** Black and greys for the floors, purple for bb_runner, red and pink for bwrap and
 * linux-sandbox, brown for node-spawn, blues for the engine, greens for serve. */
const colours: Record<string, string> = {
  floor: '#000000',
  'floor, no init': '#9a9a9a',
  'floor, warm': '#5a5a5a',
  bb_runner: '#9467bd',
  bwrap: '#d62728',
  'linux-sandbox': '#e377c2',
  'node-spawn': '#8c564b',
  'engine namespaces': '#1f77b4',
  'engine shared': '#9ecae1',
  'serve namespaces': '#2ca02c',
  'serve shared': '#98df8a',
  'serve namespaces (grpc-js client)': '#17becf',
};
const colourOf = (name: string) => colours[name] ?? '#ff7f0e';

const width = 1200;
const height = 480;
const panel = { top: 60, bottom: 70, left: 70, width: 360, gap: 90 };
const legendLeft = panel.left + 2 * panel.width + panel.gap + 30;

const escapeXml = (text: string) =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Ticks at 1, 2 and 5 times powers of ten covering [low, high]. */
function logTicks(low: number, high: number): number[] {
  const ticks: number[] = [];
  for (let exponent = Math.floor(Math.log10(low)); 10 ** exponent <= high; exponent++) {
    for (const mantissa of [1, 2, 5]) {
      const tick = mantissa * 10 ** exponent;
      if (tick >= low && tick <= high) ticks.push(tick);
    }
  }
  return ticks;
}

export function latencySvg(contenders: Contender[], title: string): string {
  const measured = contenders.filter((contender) => contender.levels !== undefined);
  const concurrencies = [
    ...new Set(measured.flatMap((c) => (c.levels ?? []).map((l) => l.concurrency))),
  ].sort((a, b) => a - b);
  const values = measured.flatMap((c) => (c.levels ?? []).flatMap((l) => [l.medianMs, l.p99Ms]));
  const low = logTicks(1e-3, Math.min(...values)).at(-1) ?? 1e-3;
  const high = logTicks(Math.max(...values), 1e6)[0] ?? 1e6;
  const plotHeight = height - panel.top - panel.bottom;
  const y = (ms: number) =>
    panel.top + plotHeight * (1 - (Math.log10(ms) - Math.log10(low)) / Math.log10(high / low));
  const x = (left: number, concurrency: number) =>
    left + (panel.width * (concurrencies.indexOf(concurrency) + 0.5)) / concurrencies.length;

  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="DejaVu Sans, sans-serif" font-size="13">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="16">${escapeXml(title)}</text>`,
  ];
  const panels = [
    { name: 'median latency (ms, log scale)', pick: (l: { medianMs: number }) => l.medianMs },
    { name: 'p99 latency (ms, log scale)', pick: (l: { p99Ms: number }) => l.p99Ms },
  ];
  panels.forEach((entry, panelIndex) => {
    const left = panel.left + panelIndex * (panel.width + panel.gap);
    const bottom = panel.top + plotHeight;
    parts.push(
      `<text x="${left + panel.width / 2}" y="${panel.top - 10}" text-anchor="middle">${entry.name}</text>`,
      `<rect x="${left}" y="${panel.top}" width="${panel.width}" height="${plotHeight}" fill="none" stroke="#999"/>`,
    );
    for (const tick of logTicks(low, high)) {
      parts.push(
        `<line x1="${left}" x2="${left + panel.width}" y1="${y(tick)}" y2="${y(tick)}" stroke="#e5e5e5"/>`,
        `<text x="${left - 6}" y="${y(tick) + 4}" text-anchor="end">${tick}</text>`,
      );
    }
    for (const concurrency of concurrencies) {
      parts.push(
        `<text x="${x(left, concurrency)}" y="${bottom + 18}" text-anchor="middle">${concurrency}</text>`,
      );
    }
    parts.push(
      `<text x="${left + panel.width / 2}" y="${bottom + 40}" text-anchor="middle">concurrent actions</text>`,
    );
    for (const contender of measured) {
      const colour = colourOf(contender.name);
      const points = (contender.levels ?? []).map(
        (l) => `${x(left, l.concurrency).toFixed(1)},${y(entry.pick(l)).toFixed(1)}`,
      );
      parts.push(
        `<polyline points="${points.join(' ')}" fill="none" stroke="${colour}" stroke-width="2"/>`,
        ...points.map((point) => {
          const [cx, cy] = point.split(',');
          return `<circle cx="${cx}" cy="${cy}" r="3.5" fill="${colour}"/>`;
        }),
      );
    }
  });
  measured.forEach((contender, index) => {
    const top = panel.top + 10 + index * 24;
    parts.push(
      `<line x1="${legendLeft}" x2="${legendLeft + 24}" y1="${top}" y2="${top}" stroke="${colourOf(contender.name)}" stroke-width="3"/>`,
      `<text x="${legendLeft + 32}" y="${top + 4}">${escapeXml(contender.name)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** Renders an SVG file to PNG. */
export async function renderPng(svgPath: string, pngPath: string): Promise<void> {
  await promisify(execFile)('rsvg-convert', ['--format', 'png', '--output', pngPath, svgPath]);
}
