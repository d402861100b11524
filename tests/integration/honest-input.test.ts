import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_DEPTH_LIMIT } from '../../shared/contracts/dataset-config.ts';
import { HEADER_MAX_DEPTH } from '../../shared/stages/parse/json-record-scanner.ts';
import { TIC_EXAMPLES } from '../helpers/fixtures.ts';
import { listFiles, tempDir } from '../helpers/lake.ts';

/**
 * Issue 14, "wrong input fails loudly" and "deep nesting", as a user meets them: `sluice run` on the
 * file, its exit code, its message, and what the lake holds afterwards.
 */

const BIN = join(import.meta.dirname, '../../bin/sluice.js');
const FEE_FOR_SERVICE = join(TIC_EXAMPLES, 'in-network-rates-fee-for-service-single-plan-sample.json');
const ALLOWED_AMOUNTS = join(TIC_EXAMPLES, 'allowed-amounts-single-plan-sample.json');

function sluice(args: string[]): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
}

let tmp: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  tmp = await tempDir('sluice-honest-');
});
afterAll(async () => tmp.cleanup());

/** Write `content` to a file of the temp dir and return its path. */
async function file(name: string, content: string): Promise<string> {
  const path = join(tmp.dir, name);
  await writeFile(path, content);
  return path;
}

/**
 * Everything but dead letters, the (released) source lease and the usage records of the invocations
 * (a failed run is paid for too): what a failed run must not leave behind.
 */
async function lakeOutput(lake: string): Promise<string[]> {
  return (await listFiles(lake).catch(() => [])).filter(
    (f) => !f.startsWith('_dead_letters/') && !f.endsWith('/lease.json') && !f.startsWith('_usage/'),
  );
}

const inNetworkSample = async () =>
  JSON.parse(await readFile(FEE_FOR_SERVICE, 'utf8')) as Record<string, unknown>;

describe('sluice run: a file without the records its dataset requires fails loudly', () => {
  const cases: { name: string; content: () => Promise<string> | string; says: (string | RegExp)[] }[] = [
    {
      name: '{"hello":"world"}',
      content: () => '{"hello":"world"}',
      says: ['no "in_network" array: the top level has "hello"', '--dataset'],
    },
    { name: 'null', content: () => 'null', says: ['no "in_network" array: the top level is null'] },
    {
      name: '{"in_network": {…}}',
      content: () => '{"reporting_entity_name":"x","in_network":{"billing_code":"1"}}',
      says: [/"in_network" is an object \(at byte 42\), not an array/, 'wrap it in [ … ]'],
    },
    {
      name: 'a TiC object wrapped in [ … ]',
      content: async () => JSON.stringify([await inNetworkSample()]),
      says: ['the top level is an array (at byte 0), not an object', 'unwrap it'],
    },
    {
      name: 'an empty in_network array',
      content: async () => JSON.stringify({ ...(await inNetworkSample()), in_network: [] }),
      says: ['"in_network" is an empty array', '"allowEmpty": true'],
    },
  ];

  it.each(cases)(
    '$name run as tic-in-network: exit 1, MissingRecordPathError, nothing committed',
    async (c) => {
      const source = await file(`case-${cases.indexOf(c)}.json`, await c.content());
      const lake = join(tmp.dir, `lake-case-${cases.indexOf(c)}`);
      const result = sluice(['run', source, '-d', 'tic-in-network', '--lake', lake, '-q']);
      expect(result.status).toBe(1);
      expect(result.stdout).not.toContain('reconciled');
      expect(result.stderr).toContain(`error: MissingRecordPathError: ${source}: `);
      for (const text of c.says) {
        if (typeof text === 'string') expect(result.stderr).toContain(text);
        else expect(result.stderr).toMatch(text);
      }
      expect(await lakeOutput(lake)).toEqual([]);
      // The failed run is dead-lettered, like any other failure.
      expect((await listFiles(lake)).some((f) => f.startsWith('_dead_letters/'))).toBe(true);
    },
  );

  it('names the dataset a CMS allowed-amounts sample belongs to when it is run as tic-in-network', async () => {
    const lake = join(tmp.dir, 'lake-allowed-amounts');
    const result = sluice(['run', ALLOWED_AMOUNTS, '-d', 'tic-in-network', '--lake', lake, '--json']);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('no "in_network" array: the top level has "reporting_entity_name"');
    expect(result.stderr).toContain('"out_of_network"');
    expect(result.stderr).toContain(
      'this looks like a tic-allowed-amounts file — use --dataset tic-allowed-amounts',
    );
    expect(JSON.parse(result.stdout).status).toBe('failed');
    expect(await lakeOutput(lake)).toEqual([]);
  });

  it('sluice datasets tells required record paths from optional ones', () => {
    const result = sluice(['datasets']);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('records: in_network[*], provider_references[*] (optional)\n');
    expect(result.stdout).toContain('records: out_of_network[*]\n');
  });

  it('runs the CMS samples of every dataset clean', async () => {
    const runs: [string, string][] = [
      ['in-network-rates-multiple-plans-sample.json', 'tic-in-network'],
      ['in-network-rates-bundle-single-plan-sample.json', 'tic-in-network'],
      ['allowed-amounts-multiple-plan-sample.json', 'tic-allowed-amounts'],
      ['table-of-contents-sample.json', 'tic-table-of-contents'],
    ];
    for (const [name, dataset] of runs) {
      const lake = join(tmp.dir, `lake-clean-${name}`);
      const args = ['run', join(TIC_EXAMPLES, name), '-d', dataset, '--lake', lake, '--json', '--no-fan-out'];
      const result = sluice(args);
      expect(result.stderr, name).toBe('');
      expect(result.status, name).toBe(0);
      const summary = JSON.parse(result.stdout);
      expect(summary.status, name).toBe('reconciled');
      // Every value of a CMS sample is on a path its dataset reads.
      expect(summary.notIngested, name).toBeUndefined();
    }
  });
});

describe('sluice run: values of the file that no path names are said, never dropped silently', () => {
  it('reports an unknown array and object beside in_network: summary, warnings, drift, quality', async () => {
    const source = await file(
      'unread.json',
      JSON.stringify({
        ...(await inNetworkSample()),
        out_of_network: [{ name: 'x' }],
        'page.info': { nested: { a: [1] } },
      }),
    );
    const lake = join(tmp.dir, 'lake-unread');
    const result = sluice(['run', source, '-d', 'tic-in-network', '--lake', lake, '--json']);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const summary = JSON.parse(result.stdout);
    const text = await readFile(source, 'utf8');
    expect(summary.notIngested).toEqual({
      count: 2,
      values: [
        { path: '$.out_of_network', kind: 'array', offset: text.indexOf('[{"name":"x"}]') },
        { path: '$["page.info"]', kind: 'object', offset: text.indexOf('{"nested"') },
      ],
    });
    const silver = JSON.parse(await readFile(summary.outputs.silverManifest, 'utf8'));
    expect(silver.violations['document.unread_value']).toMatchObject({ severity: 'warn', count: 2 });
    expect(Object.keys(silver.drift).sort()).toEqual([
      'unknown_field:$.out_of_network',
      'unknown_field:$["page.info"]',
    ]);
    expect(summary.quality.validity).toBeLessThan(1);

    const human = sluice(['run', source, '-d', 'tic-in-network', '--lake', join(tmp.dir, 'lake-unread-2')]);
    expect(human.status).toBe(0);
    expect(human.stdout).toContain('not ingested 2 values of the file that the dataset does not read:');
    expect(human.stdout).toContain('$.out_of_network (an array at byte');
  });

  it('says the same in a sliced run, and fails a dataset whose contract fails on drift', async () => {
    const records = Array.from({ length: 40 }, (_, i) => ({ id: i, note: 'x'.repeat(30) }));
    const doc = { early: 'a', claims: records, meta: { late: [1, 2], kept: 1 }, tail: { done: true } };
    const source = await file('unread-sliced.json', JSON.stringify(doc));
    const silver = (onDrift: string) => ({
      table: 'claims',
      columns: [{ name: 'id', type: 'integer' }],
      onDrift,
    });
    const configOf = (extra: Record<string, unknown>) =>
      file(
        `config-unread-${Math.random().toString(36).slice(2)}.json`,
        JSON.stringify({
          name: 'claims',
          format: 'json',
          records: [{ path: 'claims[*]' }],
          headers: [{ name: 'kept', path: 'meta.kept' }],
          ...extra,
        }),
      );
    const expected = (text: string) => ({
      count: 3,
      values: [
        { path: '$.early', kind: 'string', offset: text.indexOf('"a"') },
        { path: '$.meta.late', kind: 'array', offset: text.indexOf('[1,2]') },
        { path: '$.tail', kind: 'object', offset: text.indexOf('{"done"') },
      ],
    });
    const text = await readFile(source, 'utf8');
    const runs: string[][] = [
      [],
      // One slice per segment of 256 bytes: the values lie in different slices.
      ['--slice-seconds', '0'],
    ];
    for (const [i, flags] of runs.entries()) {
      const config = await configOf({ bronze: { segmentBytes: 256 }, silver: silver('rescue') });
      const lake = join(tmp.dir, `lake-unread-sliced-${i}`);
      const result = sluice(['run', source, '--config', config, '--lake', lake, '--json', ...flags]);
      expect(result.stderr).toBe('');
      expect(result.status).toBe(0);
      const summary = JSON.parse(result.stdout);
      if (flags.length > 0) expect(summary.slices).toBeGreaterThan(1);
      expect(summary.notIngested).toEqual(expected(text));
      expect(summary.headers).toEqual({ kept: 1 });
    }

    const strict = await configOf({ silver: silver('fail') });
    const lake = join(tmp.dir, 'lake-unread-strict');
    const failed = sluice(['run', source, '--config', strict, '--lake', lake, '-q']);
    expect(failed.status).toBe(1);
    expect(failed.stderr).toContain('SchemaDriftError');
    expect(failed.stderr).toContain('$.early: a string at byte');
  });
});

describe('sluice run --config: required record paths of a dataset of your own', () => {
  const config = (records: unknown[], extra: Record<string, unknown> = {}) =>
    file(
      `config-${Math.random().toString(36).slice(2)}.json`,
      JSON.stringify({ name: 'claims', format: 'json', records, ...extra }),
    );

  it('fails when a required path is missing, naming the keys found; passes when the path is optional', async () => {
    const source = await file('claims.json', '{"meta":{"page":1},"items":[{"id":1}]}');
    const required = await config([{ path: 'data.claims[*]' }]);
    const failed = sluice([
      'run',
      source,
      '--config',
      required,
      '--lake',
      join(tmp.dir, 'lake-claims'),
      '-q',
    ]);
    expect(failed.status).toBe(1);
    expect(failed.stderr).toContain(
      'no "data.claims" array: the top level has "meta", "items"; check that this is a claims file, or ' +
        'the record paths ("records") of its config; a path files may lack can be marked "required": false',
    );
    const optional = await config([{ path: 'data.claims[*]', required: false }, { path: 'items[*]' }]);
    const passed = sluice([
      'run',
      source,
      '--config',
      optional,
      '--lake',
      join(tmp.dir, 'lake-claims2'),
      '-q',
    ]);
    expect(passed.stderr).toBe('');
    expect(passed.status).toBe(0);
  });

  it('names a container on the way that is not an object', async () => {
    const source = await file('claims-data.json', '{"data":"none"}');
    const result = sluice([
      'run',
      source,
      '--config',
      await config([{ path: 'data.claims[*]' }]),
      '--lake',
      join(tmp.dir, 'lake-claims3'),
      '-q',
    ]);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('no "data.claims" array: "data" is a string (at byte 8), not an object');
  });

  it('accepts an empty array when the path says allowEmpty', async () => {
    const source = await file('claims-empty.json', '{"claims":[]}');
    const strict = sluice([
      'run',
      source,
      '--config',
      await config([{ path: 'claims[*]' }]),
      '--lake',
      join(tmp.dir, 'lake-e1'),
      '-q',
    ]);
    expect(strict.status).toBe(1);
    expect(strict.stderr).toContain('"claims" is an empty array: the file has no claims records');
    const lenient = sluice([
      'run',
      source,
      '--config',
      await config([{ path: 'claims[*]', allowEmpty: true }]),
      '--lake',
      join(tmp.dir, 'lake-e2'),
      '-q',
    ]);
    expect(lenient.stderr).toBe('');
    expect(lenient.status).toBe(0);
  });

  it('decides the same in a sliced run, whose checkpoints carry what the scanner saw', async () => {
    const records = Array.from({ length: 40 }, (_, i) => ({ id: i, note: 'x'.repeat(30) }));
    // One slice per segment of 256 bytes: the required array is seen slices before the end decides.
    const sliced = { bronze: { segmentBytes: 256 } };
    const good = await file('sliced-good.json', JSON.stringify({ claims: records, tail: { done: true } }));
    const requireClaims = await config([{ path: 'claims[*]' }], sliced);
    const ok = sluice([
      'run',
      good,
      '--config',
      requireClaims,
      '--lake',
      join(tmp.dir, 'lake-s1'),
      '--json',
      '--slice-seconds',
      '0',
    ]);
    expect(ok.stderr).toBe('');
    expect(ok.status).toBe(0);
    expect(JSON.parse(ok.stdout).counts.parsed).toEqual({ claims: 40 });

    const wrong = await file('sliced-wrong.json', JSON.stringify({ items: records, claimz: [] }));
    const both = await config([{ path: 'items[*]' }, { path: 'claims[*]' }], sliced);
    const lake = join(tmp.dir, 'lake-s2');
    const failed = sluice(['run', wrong, '--config', both, '--lake', lake, '-q', '--slice-seconds', '0']);
    expect(failed.status).toBe(1);
    expect(failed.stderr).toContain('no "claims" array: the top level has "items", "claimz"');
    expect(await lakeOutput(lake)).toEqual([]);
  });
});

describe('sluice run: a CSV cut off in its last row fails loudly', () => {
  const accounts = () =>
    file(
      `accounts-${Math.random().toString(36).slice(2)}.json`,
      JSON.stringify({
        name: 'accounts',
        format: 'csv',
        silver: {
          table: 'accounts',
          columns: [
            { name: 'id', type: 'integer' },
            { name: 'owner', type: 'string' },
            { name: 'balance', type: 'number' },
          ],
        },
      }),
    );
  const rows = 'id,owner,balance\r\n1,Ada,10.5\r\n2,"Grace ""G"" Hopper",20\r\n3,Linus,30\r\n';

  it('exit 1 with MalformedInputError at the short last row when the file ends inside it, nothing committed', async () => {
    // An interrupted export or a partial copy: on main this ran clean (quality 100, exit 0), its last row
    // kept as {id: 3, owner: "Lin", balance: NULL}.
    const config = await accounts();
    for (const [i, cut] of ['3,Lin', '3,Linus', '3'].entries()) {
      const source = await file(`cut-${i}.csv`, rows.slice(0, rows.indexOf('3,Linus')) + cut);
      const lake = join(tmp.dir, `lake-csv-cut-${i}`);
      const result = sluice(['run', source, '--config', config, '--lake', lake, '-q']);
      expect(result.status, result.stderr).toBe(1);
      expect(result.stderr).toContain('MalformedInputError');
      expect(result.stderr).toContain(`malformed input at byte ${rows.indexOf('3,Linus')}`);
      expect(result.stderr).toMatch(
        /the last row has [12] of 3 cells and the file ends inside it \(truncated file\?\)/,
      );
      expect(await lakeOutput(lake)).toEqual([]);
    }
  });

  it('names the byte offset of the row that is not valid CSV, however far into the file', async () => {
    const config = await accounts();
    // ≈ 3 MB of good rows first: the bad row is in a later input chunk than the last row the run took.
    const good = Array.from({ length: 150_000 }, (_, i) => `${i},Owner ${i},${i}.5\r\n`).join('');
    for (const [i, head] of [`id,owner,balance\r\n${good}`, '\ufeffid,"own\ner",balance\n'].entries()) {
      const content = `${head}7,"Ada"x,1\r\n8,Bob,2\r\n`;
      const source = await file(`bad-quote-${i}.csv`, content);
      const lake = join(tmp.dir, `lake-csv-bad-${i}`);
      const result = sluice(['run', source, '--config', config, '--lake', lake, '-q']);
      expect(result.status, result.stderr).toBe(1);
      const badRow = Buffer.byteLength(content.slice(0, content.indexOf('7,"Ada"x')));
      expect(result.stderr).toContain(
        `malformed input at byte ${badRow}: invalid CSV: Invalid Closing Quote`,
      );
      expect(await lakeOutput(lake)).toEqual([]);
    }
  });

  it('runs a complete file clean, with or without a line end after its last row, and short rows inside it', async () => {
    const config = await accounts();
    for (const [i, content] of [rows, rows.trimEnd(), `${rows}4,Short\r\n`].entries()) {
      const source = await file(`whole-${i}.csv`, content);
      const result = sluice([
        'run',
        source,
        '--config',
        config,
        '--lake',
        join(tmp.dir, `lake-csv-whole-${i}`),
        '-q',
      ]);
      expect(result.stderr).toBe('');
      expect(result.status).toBe(0);
    }
  });
});

describe('sluice run: header values are checked like records', () => {
  it('counts a wrong-typed header as a violation with its path, never a silent NULL or "true"', async () => {
    const sample = await inNetworkSample();
    const source = await file(
      'bad-headers.json',
      JSON.stringify({
        ...sample,
        reporting_entity_name: { x: 1 },
        last_updated_on: 20240101,
        plan_name: true,
        plan_market_type: 'Group',
      }),
    );
    const lake = join(tmp.dir, 'lake-headers');
    const result = sluice(['run', source, '-d', 'tic-in-network', '--lake', lake, '--json']);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const summary = JSON.parse(result.stdout);
    expect(summary.status).toBe('reconciled');
    const silver = JSON.parse(await readFile(summary.outputs.silverManifest, 'utf8'));
    expect(silver.violations).toMatchObject({
      'file.reporting_entity_name.type': { severity: 'warn', path: 'reporting_entity_name', count: 1 },
      'file.last_updated_on.type': { severity: 'warn', path: 'last_updated_on', count: 1 },
      'file.plan_name.type': { severity: 'warn', path: 'plan_name', count: 1 },
      'file.plan_market_type.enum': { severity: 'warn', path: 'plan_market_type', count: 1 },
    });
    expect(silver.drift).toMatchObject({
      'wrong_type:reporting_entity_name': { count: 1, example: '{"x":1}' },
      'wrong_type:last_updated_on': { count: 1, example: '20240101' },
      'wrong_type:plan_name': { count: 1, example: 'true' },
    });
    // Counted, so the quality score's validity says so.
    expect(summary.quality.validity).toBeLessThan(1);
  });

  it('finds nothing to report in the headers of the CMS samples', async () => {
    const lake = join(tmp.dir, 'lake-headers-clean');
    const result = sluice(['run', FEE_FOR_SERVICE, '-d', 'tic-in-network', '--lake', lake, '--json']);
    expect(result.status).toBe(0);
    const summary = JSON.parse(result.stdout);
    const silver = JSON.parse(await readFile(summary.outputs.silverManifest, 'utf8'));
    expect(Object.keys(silver.violations).filter((id) => id.startsWith('file.'))).toEqual([]);
  });
});

describe('sluice run: deep nesting never overflows the stack', () => {
  /** An array nested `depth` levels deep, counting its own level. */
  const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);
  /** A config of `data[*]` records nested up to 20,000 deep, with a silver table of their ids. */
  const deepConfig = (name: string) =>
    file(
      `${name}-config.json`,
      JSON.stringify({
        name,
        format: 'json',
        records: [{ path: 'data[*]' }],
        limits: { maxDepth: 20_000 },
        silver: { table: 'deep_rows', columns: [{ name: 'id', type: 'integer' }] },
      }),
    );

  it('runs a record nested 20,000 deep through bronze, silver (drift, _rescued) and reconciliation', async () => {
    // The top level, "data", the record, then 19,997 arrays: 20,000 levels in all, as maxDepth allows.
    const source = await file('deep.json', `{"data":[{"id":1,"deep":${nested(20_000 - 3)}}]}`);
    const config = await deepConfig('deep');
    const lake = join(tmp.dir, 'lake-deep');
    const result = sluice(['run', source, '--config', config, '--lake', lake, '--json']);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const summary = JSON.parse(result.stdout);
    expect(summary.status).toBe('reconciled');
    expect(summary.counts.tables.deep_rows.rows).toBe(1);
    const query = sluice(['query', 'SELECT length(_rescued) AS n FROM deep_rows', '--lake', lake, '--json']);
    expect(query.status).toBe(0);
    // {"deep":[[…]]}: the whole value kept, every bracket of it.
    expect(Number(JSON.parse(query.stdout.trim()).n)).toBe('{"deep":}'.length + 2 * (20_000 - 3));
  });

  it('names a deep record whose exact number parse runs out of stack, instead of calling its bronze part damaged', async () => {
    // 1e-400 sends the record to the exact parse, which recurses: 20,000 levels are too many for it.
    const source = await file(
      'deep-tiny.json',
      `{"data":[{"id":1,"x":1e-400,"deep":${nested(20_000 - 3)}}]}`,
    );
    const config = await deepConfig('deep-tiny');
    const result = sluice([
      'run',
      source,
      '--config',
      config,
      '--lake',
      join(tmp.dir, 'lake-deep-tiny'),
      '-q',
    ]);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain(
      `NestingTooDeepError: ${source}: record data[0] starting at byte 9 is nested too deeply: its exact number parse ran out of stack`,
    );
    expect(result.stderr).not.toContain('is not a bronze record');
  });

  it(`runs a TiC record nested to the cap (${MAX_DEPTH_LIMIT}) through the TiC contract, and quarantines one as deep`, async () => {
    const sample = await inNetworkSample();
    const items = sample.in_network as Record<string, unknown>[];
    const text = JSON.stringify({
      ...sample,
      in_network: [{ ...items[0], billing_code: 0 }, ...items.slice(1)],
    });
    // in_network[0].deep: top level, array, item, then the value's own levels.
    const deep = text.replace('"in_network":[{', `"in_network":[{"deep":${nested(MAX_DEPTH_LIMIT - 3)},`);
    const source = await file('deep-tic.json', deep);
    const config = await file(
      'deep-tic-config.json',
      JSON.stringify({
        name: 'tic-in-network',
        format: 'json',
        records: [{ path: 'in_network[*]' }, { path: 'provider_references[*]', required: false }],
        headers: [{ path: 'version' }, { path: 'reporting_entity_name' }],
        limits: { maxDepth: MAX_DEPTH_LIMIT },
      }),
    );
    const lake = join(tmp.dir, 'lake-deep-tic');
    // One of four records is quarantined on purpose: no threshold.
    const result = sluice([
      'run',
      source,
      '--config',
      config,
      '--lake',
      lake,
      '--json',
      '--quarantine-threshold',
      '1',
    ]);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const summary = JSON.parse(result.stdout);
    expect(summary.status).toBe('reconciled');
    // The deep record broke a quarantine rule (billing_code is a number): its whole text is in _quarantine.
    expect(summary.counts.silver.in_network).toMatchObject({ quarantined: 1 });
    const query = sluice([
      'query',
      "SELECT length(record) AS n FROM tic_in_network___quarantine WHERE record_path = 'in_network' LIMIT 1",
      '--lake',
      lake,
      '--json',
    ]);
    expect(query.status).toBe(0);
    expect(Number(JSON.parse(query.stdout.trim()).n)).toBeGreaterThan(2 * (MAX_DEPTH_LIMIT - 3));
  });

  it(`keeps a header value up to ${HEADER_MAX_DEPTH} levels deep, and fails a deeper one naming header and offset`, async () => {
    const sample = await inNetworkSample();
    const text = JSON.stringify(sample);
    const withHeader = (levels: number) =>
      text.replace('"reporting_entity_name":"medicare"', `"reporting_entity_name":${nested(levels)}`);
    const config = await file(
      'deep-header-config.json',
      JSON.stringify({
        name: 'tic-in-network',
        format: 'json',
        records: [{ path: 'in_network[*]' }, { path: 'provider_references[*]', required: false }],
        headers: [{ path: 'reporting_entity_name' }, { path: 'version' }],
        limits: { maxDepth: 20_000 },
      }),
    );
    const atCap = await file('header-at-cap.json', withHeader(HEADER_MAX_DEPTH));
    const kept = sluice(['run', atCap, '--config', config, '--lake', join(tmp.dir, 'lake-h1'), '--json']);
    expect(kept.stderr).toBe('');
    expect(kept.status).toBe(0);
    const summary = JSON.parse(kept.stdout);
    expect(summary.headers.reporting_entity_name).toEqual(JSON.parse(nested(HEADER_MAX_DEPTH)));
    const silver = JSON.parse(await readFile(summary.outputs.silverManifest, 'utf8'));
    expect(silver.violations['file.reporting_entity_name.type']).toMatchObject({ count: 1 });

    // Before: "Maximum call stack size exceeded", naming nothing.
    const deep = await file('header-too-deep.json', withHeader(20_000 - 1));
    const lake = join(tmp.dir, 'lake-h2');
    const failed = sluice(['run', deep, '--config', config, '--lake', lake, '-q']);
    expect(failed.status).toBe(1);
    expect(failed.stderr).toContain(
      `NestingTooDeepError: ${deep}: header reporting_entity_name starting at byte 25 is nested too deeply: ` +
        `more than ${HEADER_MAX_DEPTH} levels (at byte ${25 + HEADER_MAX_DEPTH})`,
    );
    expect(await lakeOutput(lake)).toEqual([]);
  });

  it('rejects a maxDepth above the cap with a message that says the cap', async () => {
    const config = await file(
      'too-deep-config.json',
      JSON.stringify({
        name: 'deep',
        format: 'json',
        records: [{ path: 'data[*]' }],
        limits: { maxDepth: MAX_DEPTH_LIMIT + 1 },
      }),
    );
    const result = sluice(['validate', '--config', config]);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(`limits.maxDepth: at most ${MAX_DEPTH_LIMIT}`);
  });

  it('fails a record deeper than maxDepth with MalformedInputError at its byte offset', async () => {
    const source = await file('too-deep.json', `{"data":[{"id":1,"deep":${nested(50)}}]}`);
    const config = await file(
      'shallow-config.json',
      JSON.stringify({
        name: 'shallow',
        format: 'json',
        records: [{ path: 'data[*]' }],
        limits: { maxDepth: 20 },
      }),
    );
    const result = sluice(['run', source, '--config', config, '--lake', join(tmp.dir, 'lake-shallow'), '-q']);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain(
      `MalformedInputError: ${source}: malformed input at byte 41: nesting deeper than 20 levels`,
    );
  });
});
