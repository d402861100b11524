import type { RunCostReport } from '../workflow/run-cost.ts';

/** Human-readable numbers for terminal output. */

export function formatBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${Math.round(s - m * 60)} s`;
}

export function formatRate(bytes: number, ms: number): string {
  return ms > 0 ? `${formatBytes((bytes * 1000) / ms)}/s` : '–';
}

/** A small amount of money to three significant digits (0.0000412), a larger one to the cent. */
export function formatUsd(usd: number): string {
  return usd >= 1 ? usd.toFixed(2) : Number(usd.toPrecision(3)).toString();
}

/** A measure to three significant digits below 1,000 (2.35, 310), grouped above (1,203). */
export function formatAmount(value: number): string {
  return value >= 1000 ? formatCount(Math.round(value)) : Number(value.toPrecision(3)).toString();
}

/** "≈ $0.0123 (0.0061 $/GB): 42 invocations, 310 GB-s, 1,203 S3 requests": a run's cost in a line. */
export function costLine(cost: RunCostReport): string {
  const perGb = cost.perInputGbUsd !== undefined ? ` (${formatUsd(cost.perInputGbUsd)} $/GB)` : '';
  const requests = cost.s3Requests.tier1 + cost.s3Requests.tier2;
  return (
    `≈ $${formatUsd(cost.totalUsd)}${perGb}: ${formatCount(cost.invocations)} invocations, ` +
    `${formatAmount(cost.gbSeconds)} GB-s, ${formatCount(requests)} S3 requests`
  );
}
