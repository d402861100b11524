import cliProgress from 'cli-progress';
import type { IngestProgress } from '../stages/bronze/ingest-to-bronze.ts';
import type { SilverProgress } from '../stages/silver/build-silver.ts';
import { formatBytes, formatCount, formatDuration } from './format.ts';

/** Reports ingest progress on stderr: a live bar on a terminal, a line every few seconds otherwise. */
export interface ProgressReporter {
  update(progress: IngestProgress): void;
  /** A later stage has started (the parse bar is done). */
  stage(name: string): void;
  silver(progress: SilverProgress): void;
  stop(): void;
}

const LINE_INTERVAL_MS = 2000;

export function createProgressReporter(stream: NodeJS.WriteStream, enabled: boolean): ProgressReporter {
  if (!enabled) return { update() {}, stage() {}, silver() {}, stop() {} };
  const stageLine = (text: string) => stream.write(stream.isTTY ? `\r\x1b[K${text}` : `${text}\n`);
  const started = Date.now();
  const describe = (p: IngestProgress) => {
    const elapsed = Date.now() - started;
    const rate = elapsed > 0 ? (p.uncompressedBytes * 1000) / elapsed : 0;
    const done = p.storedBytesTotal > 0 ? p.storedBytesRead / p.storedBytesTotal : 0;
    const eta = done > 0 && done < 1 ? formatDuration((elapsed / done) * (1 - done)) : '–';
    return {
      read: `${formatBytes(p.storedBytesRead)}/${formatBytes(p.storedBytesTotal)}`,
      records: formatCount(p.records),
      recordsPerSecond: formatCount(Math.round((p.records * 1000) / Math.max(elapsed, 1))),
      rate: `${formatBytes(rate)}/s`,
      eta,
    };
  };
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        stream,
        format:
          '{bar} {percentage}% | {read} | {records} records ({recordsPerSecond}/s) | {rate} uncompressed | ETA {eta_text}',
        hideCursor: true,
        clearOnComplete: true,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(1, 0, { read: '', records: '0', recordsPerSecond: '0', rate: '', eta_text: '–' });
    let barStopped = false;
    return {
      update(p) {
        const d = describe(p);
        bar.setTotal(Math.max(p.storedBytesTotal, 1));
        bar.update(p.storedBytesRead, { ...d, eta_text: d.eta });
      },
      stage(name) {
        if (!barStopped) bar.stop();
        barStopped = true;
        stageLine(`${name}…`);
      },
      silver: (p) =>
        stageLine(`silver: part ${p.partsDone}/${p.partsTotal}, ${formatCount(p.records)} records`),
      stop() {
        if (!barStopped) bar.stop();
        barStopped = true;
        stream.write('\r\x1b[K');
      },
    };
  }
  let last = 0;
  return {
    update(p) {
      const now = Date.now();
      if (now - last < LINE_INTERVAL_MS) return;
      last = now;
      const d = describe(p);
      stream.write(
        `progress: ${d.read} read, ${d.records} records (${d.recordsPerSecond}/s), ${d.rate}, ETA ${d.eta}\n`,
      );
    },
    stage: (name) => stageLine(`${name}…`),
    silver(p) {
      if (p.partsDone === p.partsTotal || Date.now() - last >= LINE_INTERVAL_MS) {
        last = Date.now();
        stageLine(`silver: part ${p.partsDone}/${p.partsTotal}, ${formatCount(p.records)} records`);
      }
    },
    stop() {},
  };
}
