import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { formatTable, openLakeQuery } from '../adapters/duckdb/lake-query.ts';
import { ConfigError } from '../errors.ts';

/** `sluice query`: SQL over the local lake's silver tables. */
export async function runQuery(
  sql: string | undefined,
  options: { lake: string; json: boolean },
): Promise<void> {
  const lakeDir = resolve(options.lake);
  if (!existsSync(join(lakeDir, 'silver'))) {
    throw new ConfigError(
      `${lakeDir} has no silver tables yet. Run \`sluice run <file> --dataset <name>\` first.`,
    );
  }
  const lake = await openLakeQuery(lakeDir);
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
      for (const row of result.rows) {
        process.stdout.write(
          `${JSON.stringify(Object.fromEntries(result.columns.map((c, i) => [c, row[i]])))}\n`,
        );
      }
    } else {
      process.stdout.write(`${formatTable(result)}\n`);
    }
  } finally {
    await lake.close();
  }
}
