import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  CONFIG_TABLE_END,
  CONFIG_TABLE_START,
  configFieldsTable,
  withConfigFieldsTable,
} from '../../infra/config/config-docs.ts';
import { REPO_ROOT } from '../../infra/constructs/sluice-function.ts';

const deployDoc = () => readFileSync(path.join(REPO_ROOT, 'docs/DEPLOY.md'), 'utf8');

describe('Docs: docs/DEPLOY.md', () => {
  it('holds the config table generated from the schema (run `npm run docs:config` after changing it)', () => {
    const doc = deployDoc();
    expect(doc).toContain(CONFIG_TABLE_START);
    expect(doc).toContain(CONFIG_TABLE_END);
    expect(doc).toBe(withConfigFieldsTable(doc));
  });

  it('lists every config field, nested ones with their path, each with a description', () => {
    const table = configFieldsTable();
    for (const field of [
      'stackName',
      'alarmEmail',
      'datasets[].maxRunHours',
      'storage.noncurrentVersionExpirationDays',
      'storage.bronzeIntelligentTieringDays',
      'athena.bytesScannedCutoffGb',
      'sources[].credentials.kind',
    ]) {
      expect(table).toContain(`| \`${field}\` |`);
    }
    for (const row of table.split('\n').slice(2)) {
      expect(row.split(' | ').at(-1)!.length, row).toBeGreaterThan(8);
    }
    expect(table).toMatch(/\| `storage.noncurrentVersionExpirationDays` \| whole number 1–365 \| `7` \|/);
  });

  it('is linked from the README, which says to confirm the alarm subscription', () => {
    const readme = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
    expect(readme).toContain('(docs/DEPLOY.md)');
    expect(readme).toMatch(/confirm/i);
  });
});
