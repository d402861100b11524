import { formatTable, openLakeQuery } from '../adapters/duckdb/lake-query.ts';
import { openLakeStore } from '../adapters/lake-store.ts';
import { FileObjectStore } from '../adapters/local/file-object-store.ts';
import { ConfigError } from '../errors.ts';
import { formatBytes } from './format.ts';

/** `sluice query`: SQL over the lake's silver tables (a folder, or s3://bucket[/prefix]). */
export async function runQuery(
  sql: string | undefined,
  options: { lake: string; json: boolean },
): Promise<void> {
  const store = openLakeStore(options.lake);
  if (!(await hasCommits(store))) {
    throw new ConfigError(
      `${options.lake} has no committed silver tables yet. Run \`sluice run <file> --dataset <name>\` first` +
        ' (a run whose reconciliation failed commits nothing; `sluice runs` lists the runs).',
    );
  }
  const remote = !(store instanceof FileObjectStore);
  const lake = await openLakeQuery(options.lake, {
    // An S3 lake's tables are fetched before DuckDB reads them: only those the SQL names.
    ...(remote && { only: (view: string) => sql !== undefined && namesView(sql, view) }),
    onFetch: (files, bytes) =>
      process.stderr.write(`fetching ${files} silver file(s), ${formatBytes(bytes)}, from ${options.lake}\n`),
  });
  try {
    if (!sql) {
      process.stdout.write(
        `views:\n${lake
          .views()
          .map((v) => `  ${v}`)
          .join('\n')}\n`,
      );
      return;
    }
    const result = await lake.query(sql);
    if (options.json) {
      const keys = uniqueKeys(result.columns);
      for (const row of result.rows) {
        process.stdout.write(`${JSON.stringify(Object.fromEntries(keys.map((k, i) => [k, row[i]])))}\n`);
      }
    } else {
      process.stdout.write(`${formatTable(result)}\n`);
    }
  } finally {
    await lake.close();
  }
}

/**
 * JSON keys for a result's columns: a name that repeats (`SELECT *` of a join) gets `_1`, `_2`, … after
 * its first use, skipping names the result has, since an object keeps one value per key and would
 * silently drop the others.
 */
export function uniqueKeys(columns: readonly string[]): string[] {
  const taken = new Set(columns);
  const used = new Set<string>();
  return columns.map((column) => {
    let key = column;
    for (let n = 1; used.has(key) || (key !== column && taken.has(key)); n++) key = `${column}_${n}`;
    used.add(key);
    return key;
  });
}

/**
 * Whether any source has a current version (`_sources/<dataset>/source=<id>/current.json`). A lake whose
 * runs all failed holds leases and bronze, and no view to show.
 */
async function hasCommits(store: ReturnType<typeof openLakeStore>): Promise<boolean> {
  for await (const object of store.list('_sources/')) if (object.key.endsWith('/current.json')) return true;
  return false;
}

/** Whether `sql` mentions `view` as a word (quoted or not, any case): a superset of the views it reads. */
export function namesView(sql: string, view: string): boolean {
  const escaped = view.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(^|[^A-Za-z0-9_])${escaped}($|[^A-Za-z0-9_])`, 'i').test(sql);
}
