import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openLakeQuery } from '../../shared/adapters/duckdb/lake-query.ts';
import { parseExact } from '../../shared/contracts/exact-json.ts';
import { TIC_EXAMPLES } from '../helpers/fixtures.ts';
import { tempDir } from '../helpers/lake.ts';

// Issue 14, "no silent change of a value": each case as a user meets it, through the CLI.

const BIN = join(import.meta.dirname, '../../bin/sluice.js');

function sluice(args: string[]): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
}

interface RunOutcome {
  readonly status: number | null;
  readonly stderr: string;
  readonly summary: Record<string, unknown> & { outputs: { silverManifest: string } };
  readonly violations: Record<string, { severity: string; path: string; count: number; example: string }>;
}

/** Rows of a query on a run's lake, as objects. */
async function rows(lake: string, sql: string): Promise<Record<string, unknown>[]> {
  const query = await openLakeQuery(lake);
  try {
    const result = await query.query(sql);
    return result.rows.map((row) => Object.fromEntries(result.columns.map((c, i) => [c, row[i]])));
  } finally {
    await query.close();
  }
}

describe('sluice run: no value changes silently', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    tmp = await tempDir('sluice-values-');
  });
  afterAll(async () => tmp.cleanup());

  async function run(name: string, input: string, config: object): Promise<RunOutcome & { lake: string }> {
    const file = join(tmp.dir, name);
    await writeFile(file, input);
    const configFile = join(tmp.dir, `${name}.config.json`);
    await writeFile(configFile, JSON.stringify(config));
    const lake = join(tmp.dir, `${name}-lake`);
    const result = sluice([
      'run',
      file,
      '--config',
      configFile,
      '--lake',
      lake,
      '--json',
      '--quarantine-threshold',
      '1',
    ]);
    const summary = result.status === 0 ? JSON.parse(result.stdout) : undefined;
    const silver = summary && parseExact(await readFile(summary.outputs.silverManifest, 'utf8'));
    return {
      status: result.status,
      stderr: result.stderr,
      summary,
      violations: (silver as { violations?: RunOutcome['violations'] })?.violations ?? {},
      lake,
    };
  }

  const things = (format: 'ndjson' | 'csv', keyType: 'string' | 'integer' = 'string') => ({
    name: `things-${format}`,
    format,
    silver: {
      table: 'things',
      columns: [
        { name: 'id', type: keyType },
        { name: 'x', type: 'number' },
        { name: 's', type: 'string' },
      ],
      primaryKey: ['id'],
      load: 'append',
    },
  });

  /** Runs the CMS fee-for-service sample, edited by `edit`, as tic-in-network into a lake of its own. */
  async function runTicSample(name: string, edit: (sample: string) => string) {
    const sample = await readFile(
      join(TIC_EXAMPLES, 'in-network-rates-fee-for-service-single-plan-sample.json'),
      'utf8',
    );
    const file = join(tmp.dir, `${name}.json`);
    await writeFile(file, edit(sample));
    const lake = join(tmp.dir, `${name}-lake`);
    const result = sluice([
      'run',
      file,
      '--dataset',
      'tic-in-network',
      '--lake',
      lake,
      '--json',
      '--quarantine-threshold',
      '1',
    ]);
    return { result, lake };
  }

  it('keeps the digits of an NDJSON key beyond 2^53: 9007199254740993 is not merged with …992', async () => {
    const input = '{"id":9007199254740993,"x":1}\n{"id":9007199254740992,"x":2}\n';
    const out = await run('keys.ndjson', input, things('ndjson'));
    expect(out.stderr).toBe('');
    expect(out.status).toBe(0);
    expect(await rows(out.lake, 'SELECT id, x FROM things ORDER BY x')).toEqual([
      { id: '9007199254740993', x: 1 },
      { id: '9007199254740992', x: 2 },
    ]);
    expect(out.summary.counts).toMatchObject({ tables: { things: { rows: 2, duplicates: 0 } } });
  });

  it('keeps the digits of a decimal a double cannot hold in a string key: 1.00000000000000000001 is not merged with …02', async () => {
    const input =
      '{"id":1.00000000000000000001,"x":1}\n{"id":1.00000000000000000002,"x":2}\n' +
      '{"id":1234567.890123456789,"x":3}\n{"id":12345678901234567890.5,"x":4}\n{"id":1.10,"x":5}\n';
    const out = await run('decimal-keys.ndjson', input, things('ndjson'));
    expect(out.status, out.stderr).toBe(0);
    expect(await rows(out.lake, 'SELECT id, x FROM things ORDER BY x')).toEqual([
      { id: '1.00000000000000000001', x: 1 },
      { id: '1.00000000000000000002', x: 2 },
      { id: '1234567.890123456789', x: 3 },
      { id: '12345678901234567890.5', x: 4 },
      // A double holds 1.10 exactly: its text is the number's, as for every number a double holds.
      { id: '1.1', x: 5 },
    ]);
    expect(out.summary.counts).toMatchObject({ tables: { things: { rows: 5, duplicates: 0 } } });
    // Still a number written as text: counted, with the digits it had.
    expect(out.violations['things.id.coerced']).toMatchObject({
      count: 5,
      example: 'things.id: number 1.00000000000000000001 written as text (converted)',
    });
  });

  it('quarantines a decimal that only rounds to an integer in an integer column (1.0000000000000001), saying so', async () => {
    const input = '{"id":1.0000000000000001,"x":1}\n{"id":2,"x":2}\n';
    const out = await run('decimal-integer.ndjson', input, things('ndjson', 'integer'));
    expect(out.status, out.stderr).toBe(0);
    expect(await rows(out.lake, 'SELECT CAST(id AS VARCHAR) AS id FROM things')).toEqual([{ id: '2' }]);
    const [quarantined] = await rows(out.lake, 'SELECT field_path, message FROM _quarantine');
    expect(quarantined).toMatchObject({ field_path: 'id' });
    expect(quarantined!.message).toContain('1.0000000000000001 is not an integer');

    // The same as a CSV cell, whose text is all there is; 2.0 and 1e3 are integers, as before.
    const csv = await run(
      'decimal-integer.csv',
      'id,x\n1.0000000000000001,1\n2.0,2\n1e3,3\n',
      things('csv', 'integer'),
    );
    expect(csv.status, csv.stderr).toBe(0);
    expect(await rows(csv.lake, 'SELECT CAST(id AS VARCHAR) AS id FROM things ORDER BY x')).toEqual([
      { id: '2' },
      { id: '1000' },
    ]);
    const [cell] = await rows(csv.lake, 'SELECT field_path, message FROM _quarantine');
    expect(cell).toMatchObject({ field_path: 'id' });
    expect(cell!.message).toContain('1.0000000000000001');
  });

  it('stores an integer key beyond 2^53 exactly in a BIGINT column, and quarantines one beyond 64 bits', async () => {
    const input =
      '{"id":9007199254740993,"x":1}\n{"id":9007199254740992,"x":2}\n{"id":18446744073709551617,"x":3}\n';
    const out = await run('bigint-keys.ndjson', input, things('ndjson', 'integer'));
    expect(out.status).toBe(0);
    expect(await rows(out.lake, 'SELECT CAST(id AS VARCHAR) AS id FROM things ORDER BY x')).toEqual([
      { id: '9007199254740993' },
      { id: '9007199254740992' },
    ]);
    const [quarantined] = await rows(out.lake, 'SELECT field_path, message, record FROM _quarantine');
    expect(quarantined).toMatchObject({ field_path: 'id', record: '{"id":18446744073709551617,"x":3}' });
    expect(quarantined!.message).toContain('beyond the range of a 64-bit integer');
  });

  it('quarantines 1e400 (a JSON number or a numeric string) with its path and reason, never Infinity', async () => {
    const input = '{"id":"a","x":1e400}\n{"id":"b","x":"-1e400"}\n{"id":"c","x":1.5}\n';
    const out = await run('huge.ndjson', input, things('ndjson'));
    expect(out.status).toBe(0);
    expect(await rows(out.lake, 'SELECT id, x FROM things')).toEqual([{ id: 'c', x: 1.5 }]);
    const quarantined = await rows(
      out.lake,
      'SELECT field_path, message, record FROM _quarantine ORDER BY record',
    );
    expect(quarantined.map((q) => q.field_path)).toEqual(['x', 'x']);
    for (const q of quarantined) expect(q.message).toContain('beyond the double range');
    // The record as it came: 1e400 is not re-serialized as null.
    expect(quarantined[0]!.record).toBe('{"id":"a","x":1e400}');
  });

  it('refuses 1e-400 in a number column (a double holds it only as 0), keeps it as text, and rescues values as written', async () => {
    const input = [
      '{"id":"a","x":1e-400}',
      '{"id":"b","x":"1e-400"}',
      '{"id":"c","s":1e-400}',
      '{"id":"d","x":0e-500,"extra":[1e-400,1e400,1.00000000000000000001]}',
    ].join('\n');
    const out = await run('tiny.ndjson', `${input}\n`, things('ndjson'));
    expect(out.status).toBe(0);
    expect(await rows(out.lake, 'SELECT id, x, s, _rescued FROM things ORDER BY id')).toEqual([
      { id: 'c', x: null, s: '1e-400', _rescued: null },
      { id: 'd', x: 0, s: null, _rescued: '{"extra":[1e-400,1e400,1.00000000000000000001]}' },
    ]);
    const quarantined = await rows(
      out.lake,
      'SELECT field_path, message, record FROM _quarantine ORDER BY record',
    );
    expect(quarantined.map((q) => [q.field_path, q.record])).toEqual([
      ['x', '{"id":"a","x":1e-400}'],
      ['x', '{"id":"b","x":"1e-400"}'],
    ]);
    for (const q of quarantined) expect(q.message).toContain('a nonzero number below the double range');
  });

  it('quarantines a TiC negotiated_rate of 1e-400, which a double holds only as 0', async () => {
    const { result, lake } = await runTicSample('tic-underflow', (sample) =>
      sample.replace(/"negotiated_rate": [0-9.]+/, '"negotiated_rate": 1e-400'),
    );
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const quarantined = await rows(lake, 'SELECT message, record FROM _quarantine');
    expect(quarantined).toHaveLength(1);
    expect(quarantined[0]!.message).toBe(
      'negotiated_price.negotiated_rate: a nonzero number below the double range (±4.9e-324, e.g. 1e-400; a double holds it only as 0)',
    );
    expect(quarantined[0]!.record).toContain('"negotiated_rate": 1e-400');
    expect(
      await rows(lake, 'SELECT negotiated_rate FROM negotiated_prices WHERE negotiated_rate = 0'),
    ).toEqual([]);
  });

  it('quarantines a record whose key is written twice with different values, and says where', async () => {
    const input =
      '{"id":"a","x":1,"x":2}\n{"id":"b","x":3,"s":"q","s":"q"}\n{"id":"c","x":4,"s":"é" , "s" :"f"}\n';
    const out = await run('twice.ndjson', input, things('ndjson'));
    expect(out.status, out.stderr).toBe(0);
    // The same value twice changes nothing: that record is kept.
    expect(await rows(out.lake, 'SELECT id, x, s FROM things')).toEqual([{ id: 'b', x: 3, s: 'q' }]);
    const quarantined = await rows(
      out.lake,
      'SELECT rule_id, field_path, message, record FROM _quarantine ORDER BY _record_index',
    );
    expect(quarantined.map((q) => [q.rule_id, q.field_path, q.record])).toEqual([
      ['record.duplicate_key', 'x', '{"id":"a","x":1,"x":2}'],
      ['record.duplicate_key', 's', '{"id":"c","x":4,"s":"é" , "s" :"f"}'],
    ]);
    // Byte offsets in the file (é is two bytes), of each value.
    const byteAt = (text: string) => Buffer.byteLength(input.slice(0, input.indexOf(text)));
    expect(quarantined[0]!.message).toContain(`at byte ${byteAt('1,"x"')}, then at byte ${byteAt('2}')}`);
    expect(quarantined[1]!.message).toContain(`at byte ${byteAt('"é"')}, then at byte ${byteAt('"f"')}`);
    expect(out.summary.counts).toMatchObject({ tables: { things: { rows: 1 } } });
  });

  it('quarantines a TiC item whose billing_code is written twice, and keeps the first of a header written twice', async () => {
    const { result, lake } = await runTicSample('tic-twice', (sample) =>
      sample
        .replace(/"billing_code": "([^"]*)",/, '"billing_code": "$1", "billing_code": "99999",')
        .replace(
          '"reporting_entity_name": ',
          '"reporting_entity_name": "Someone else", "reporting_entity_name": ',
        ),
    );
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const quarantined = await rows(lake, 'SELECT record_path, rule_id, field_path FROM _quarantine');
    expect(quarantined).toEqual([
      { record_path: 'in_network', rule_id: 'record.duplicate_key', field_path: 'billing_code' },
    ]);
    // The other item is kept; nothing of the quarantined one (27447, then 99999) reached silver.
    expect(await rows(lake, 'SELECT billing_code FROM in_network_items')).toEqual([
      { billing_code: '27448' },
    ]);
    expect(await rows(lake, 'SELECT reporting_entity_name FROM files')).toEqual([
      { reporting_entity_name: 'Someone else' },
    ]);
    const summary = JSON.parse(result.stdout);
    expect(summary.notIngested.values).toEqual([
      expect.objectContaining({ path: '$.reporting_entity_name', kind: 'string', repeated: true }),
    ]);
  });

  it('says how many keys of a TiC table held other values than the row its duplicates kept', async () => {
    const withReference = (edit: (group: { npi: number[] }) => void) => (sample: string) => {
      const file = JSON.parse(sample);
      const copy = structuredClone(file.provider_references[0]);
      edit(copy.provider_groups[0]);
      file.provider_references.push(copy);
      return JSON.stringify(file);
    };
    // The same provider reference twice: copies, dropped and counted as duplicates only.
    const same = await runTicSample(
      'tic-same-reference',
      withReference(() => {}),
    );
    expect(same.result.status, same.result.stderr).toBe(0);
    const sameCounts = JSON.parse(same.result.stdout).counts.tables.provider_groups;
    expect(sameCounts.duplicates).toBeGreaterThan(0);
    expect(sameCounts.conflictingKeys).toBeUndefined();
    // Its first group with another NPI: the file says two things for one key, and the run says so.
    const other = await runTicSample(
      'tic-other-reference',
      withReference((group) => {
        group.npi = [9876543210];
      }),
    );
    expect(other.result.status, other.result.stderr).toBe(0);
    expect(JSON.parse(other.result.stdout).counts.tables.provider_groups).toEqual({
      rows: sameCounts.rows,
      duplicates: sameCounts.duplicates,
      conflictingKeys: 1,
    });
    expect(
      await rows(
        other.lake,
        'SELECT count(*) AS n FROM provider_groups WHERE list_contains(npi, 9876543210)',
      ),
    ).toEqual([{ n: 0 }]);
  });

  const stamps = {
    name: 'stamps',
    format: 'ndjson',
    silver: {
      table: 'stamps',
      columns: [
        { name: 'id', type: 'string' },
        { name: 'seen_at', type: 'timestamp' },
      ],
    },
  };

  it('quarantines a timestamp whose UTC offset is none (+99:99, +24:00, -00:60) instead of shifting it by days', async () => {
    const input = [
      '{"id":"ok","seen_at":"2024-06-01T12:00:00+14:00"}',
      '{"id":"a","seen_at":"2024-06-01T12:00:00+99:99"}',
      '{"id":"b","seen_at":"2024-06-01T12:00:00+24:00"}',
      '{"id":"c","seen_at":"2024-06-01T12:00:00-00:60"}',
      '{"id":"d","seen_at":"2024-06-01 12:00+2400"}',
    ].join('\n');
    const out = await run('offsets.ndjson', input, stamps);
    expect(out.status, out.stderr).toBe(0);
    expect(await rows(out.lake, 'SELECT id, CAST(seen_at AS VARCHAR) AS seen_at FROM stamps')).toEqual([
      { id: 'ok', seen_at: '2024-05-31 22:00:00' },
    ]);
    const quarantined = await rows(out.lake, 'SELECT field_path, message FROM _quarantine');
    expect(quarantined).toHaveLength(4);
    for (const q of quarantined) {
      expect(q.field_path).toBe('seen_at');
      expect(q.message).toContain('is not an ISO 8601 timestamp');
    }
  });

  it('counts a timestamp whose digits go beyond the microsecond, which a TIMESTAMP cannot hold', async () => {
    const input = [
      '{"id":"nanos","seen_at":"2024-06-01T12:00:00.123456789Z"}',
      '{"id":"one","seen_at":"2024-06-01T12:00:00.000000001Z"}',
      '{"id":"zeros","seen_at":"2024-06-01T12:00:00.123456000Z"}',
      '{"id":"micros","seen_at":"2024-06-01T12:00:00.123456Z"}',
    ].join('\n');
    const out = await run('nanos.ndjson', input, stamps);
    expect(out.status, out.stderr).toBe(0);
    expect(
      await rows(out.lake, 'SELECT id, CAST(seen_at AS VARCHAR) AS seen_at FROM stamps ORDER BY id'),
    ).toEqual([
      { id: 'micros', seen_at: '2024-06-01 12:00:00.123456' },
      { id: 'nanos', seen_at: '2024-06-01 12:00:00.123456' },
      { id: 'one', seen_at: '2024-06-01 12:00:00' },
      { id: 'zeros', seen_at: '2024-06-01 12:00:00.123456' },
    ]);
    // Cut to the microsecond: counted, with the path, for the two whose cut digits were not zeros.
    expect(out.violations['stamps.seen_at.coerced']).toMatchObject({
      severity: 'warn',
      path: 'seen_at',
      count: 2,
    });
  });

  it('quarantines a CSV number cell 1e400', async () => {
    const out = await run('huge.csv', 'id,x,s\na,1e400,q\nb,2.5,r\n', things('csv'));
    expect(out.status).toBe(0);
    expect(await rows(out.lake, 'SELECT id, x FROM things')).toEqual([{ id: 'b', x: 2.5 }]);
    const [quarantined] = await rows(out.lake, 'SELECT field_path, message FROM _quarantine');
    expect(quarantined!.field_path).toBe('x');
    expect(quarantined!.message).toContain('beyond the double range');
  });

  it('counts a lone surrogate as a warning with its path', async () => {
    const input = '{"id":"a","s":"x\\ud800y"}\n{"id":"b","s":"\\ud83d\\ude00"}\n';
    const out = await run('surrogate.ndjson', input, things('ndjson'));
    expect(out.status).toBe(0);
    expect(out.violations['value.lone_surrogate']).toMatchObject({ severity: 'warn', path: 's', count: 1 });
    // A proper pair is not a warning, and both rows are kept.
    expect(await rows(out.lake, 'SELECT id, s FROM things ORDER BY id')).toEqual([
      { id: 'a', s: 'x\ufffdy' },
      { id: 'b', s: '😀' },
    ]);
  });

  it('fails a CSV whose header names a column twice, naming the columns and what to do', async () => {
    const out = await run('dup.csv', 'id,a,a\n1,first,second\n', things('csv'));
    expect(out.status).toBe(1);
    expect(out.stderr).toContain('"a" (columns 2 and 3)');
    expect(out.stderr).toContain('rename the duplicates in the header row');
  });

  it('keeps CSV columns named __proto__, constructor and hasOwnProperty', async () => {
    const config = {
      name: 'special-csv',
      format: 'csv',
      silver: {
        table: 'special',
        columns: [
          { name: 'id', type: 'string' },
          { name: 'proto', type: 'string', source: '__proto__' },
          { name: 'ctor', type: 'string', source: 'constructor' },
          { name: 'own', type: 'string', source: 'hasOwnProperty' },
        ],
        primaryKey: ['id'],
        load: 'append',
      },
    };
    const out = await run('special.csv', 'id,__proto__,constructor,hasOwnProperty\n1,p,c,h\n', config);
    expect(out.stderr).toBe('');
    expect(out.status).toBe(0);
    expect(await rows(out.lake, 'SELECT id, proto, ctor, own FROM special')).toEqual([
      { id: '1', proto: 'p', ctor: 'c', own: 'h' },
    ]);
  });

  it('quarantines a TiC negotiated_rate of 1e400 and a provider_group_id beyond 2^53, saying why', async () => {
    const { result, lake } = await runTicSample('tic-edges', (sample) =>
      sample
        .replace(/"negotiated_rate": [0-9.]+/, '"negotiated_rate": 1e400')
        .replace('"provider_group_id": 1,', '"provider_group_id": 12345678901234567891,')
        .replaceAll(/"provider_references": \[1\]/g, '"provider_references": [12345678901234567891]'),
    );
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const messages = (await rows(lake, 'SELECT DISTINCT message FROM _quarantine ORDER BY 1')).map(
      (r) => r.message,
    );
    expect(messages).toContain(
      'negotiated_price.negotiated_rate: a number beyond the double range (±1.8e308, e.g. 1e400)',
    );
    expect(messages).toContain(
      'provider_reference.provider_group_id: 12345678901234567891 is an integer beyond 2^53, which a double would round (not stored)',
    );
    // Nothing rounded reached silver: no group id or reference ends in the rounded digits.
    const ids = await rows(lake, 'SELECT provider_group_id FROM provider_groups');
    expect(ids.map((r) => r.provider_group_id)).not.toContain('12345678901234567000');
  });

  it('keeps a 20-digit plan_id header (a JSON number) exact in the manifest and the files table', async () => {
    const { result, lake } = await runTicSample('plan-id', (sample) =>
      sample.replace('"plan_id": "1111111111"', '"plan_id": 12345678901234567890'),
    );
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('"plan_id":12345678901234567890');
    const summary = JSON.parse(result.stdout);
    const manifest = await readFile(summary.outputs.bronzeManifest, 'utf8');
    expect(manifest).toContain('"plan_id": 12345678901234567890');
    expect(await rows(lake, 'SELECT plan_id FROM files')).toEqual([{ plan_id: '12345678901234567890' }]);
  });
});
