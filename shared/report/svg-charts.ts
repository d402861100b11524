import { escapeHtml } from './escape-html.ts';

/**
 * Charts as inline SVG, drawn by the browser from markup alone: the report needs bar charts of a few
 * dozen numbers, which SVG draws without a line of script, so the page can forbid every script (its
 * Content-Security-Policy) and still show its charts, opens offline, prints, and costs a few KB where a
 * charting library would add 50–200 KB of JavaScript to every run's report and an asset to every Lambda
 * bundle. Every label is escaped.
 */

export interface BarSeries {
  readonly name: string;
  /** A CSS colour. */
  readonly color: string;
}

export interface BarGroup {
  readonly label: string;
  /** One value per series, in series order. */
  readonly values: readonly number[];
}

export interface BarChartOptions {
  /** What the chart shows, for screen readers (and the test that finds it). */
  readonly title: string;
  readonly series: readonly BarSeries[];
  readonly groups: readonly BarGroup[];
  /** How a value is written beside its bar. */
  readonly format: (value: number) => string;
  /** The value of a full-width bar. @default the largest value */
  readonly max?: number;
}

/** The palette: distinguishable for the common colour-vision deficiencies (Okabe–Ito). */
export const COLORS = {
  blue: '#0072B2',
  orange: '#E69F00',
  green: '#009E73',
  red: '#D55E00',
  purple: '#CC79A7',
  sky: '#56B4E9',
} as const;

const WIDTH = 760;
const LABEL_WIDTH = 200;
const VALUE_WIDTH = 90;
const BAR_HEIGHT = 14;
const BAR_GAP = 3;
const GROUP_GAP = 12;
const LEGEND_HEIGHT = 24;

/** A horizontal bar chart: one group of bars (one per series) per label. */
export function barChart(options: BarChartOptions): string {
  const { series, groups, format } = options;
  const max = options.max ?? Math.max(0, ...groups.flatMap((g) => g.values));
  const plotWidth = WIDTH - LABEL_WIDTH - VALUE_WIDTH;
  const groupHeight = series.length * (BAR_HEIGHT + BAR_GAP) - BAR_GAP;
  const legend = series.length > 1 ? LEGEND_HEIGHT : 0;
  const height = legend + groups.length * (groupHeight + GROUP_GAP);
  const parts: string[] = [];
  if (legend > 0) {
    series.forEach((s, i) => {
      const x = LABEL_WIDTH + i * 130;
      parts.push(
        `<rect x="${x}" y="4" width="12" height="12" fill="${s.color}"/>`,
        `<text x="${x + 16}" y="14" class="legend">${escapeHtml(s.name)}</text>`,
      );
    });
  }
  groups.forEach((group, g) => {
    const top = legend + g * (groupHeight + GROUP_GAP);
    parts.push(
      `<text x="${LABEL_WIDTH - 8}" y="${top + groupHeight / 2 + 4}" text-anchor="end" class="label">${escapeHtml(shorten(group.label))}</text>`,
    );
    series.forEach((s, i) => {
      const value = group.values[i] ?? 0;
      const y = top + i * (BAR_HEIGHT + BAR_GAP);
      // A bar of a non-zero value is at least a sliver, so that it is seen to exist.
      const width = max > 0 ? Math.max(value > 0 ? 2 : 0, (value / max) * plotWidth) : 0;
      const text = format(value);
      parts.push(
        `<rect x="${LABEL_WIDTH}" y="${y}" width="${width.toFixed(1)}" height="${BAR_HEIGHT}" fill="${s.color}" data-series="${escapeHtml(s.name)}" data-label="${escapeHtml(group.label)}" data-value="${value}"><title>${escapeHtml(`${group.label} · ${s.name}: ${text}`)}</title></rect>`,
        `<text x="${LABEL_WIDTH + width + 4}" y="${y + BAR_HEIGHT - 3}" class="value">${escapeHtml(text)}</text>`,
      );
    });
  });
  return `<svg class="chart" role="img" aria-label="${escapeHtml(options.title)}" viewBox="0 0 ${WIDTH} ${height}" width="${WIDTH}" height="${height}" xmlns="http://www.w3.org/2000/svg">${parts.join('')}</svg>`;
}

/** Long labels (record paths, table names) cut to fit the label column; the full text is in the tables. */
function shorten(label: string): string {
  return label.length > 28 ? `${label.slice(0, 27)}…` : label;
}
