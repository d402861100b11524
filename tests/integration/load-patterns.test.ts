import { type DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  cdcUpsert,
  type KeyedLoad,
  LoadPatternError,
  type LoadResult,
  scd2,
  snapshot,
} from '../../shared/stages/silver/load-patterns.ts';
import { seededRandom as random } from '../helpers/random.ts';

/** A change event: entity (id, region), its sequence number, what happened and the new values. */
interface Event {
  readonly id: number;
  readonly region: string;
  readonly seq: number;
  readonly op: 'insert' | 'update' | 'delete';
  readonly name: string | null;
  readonly amount: number | null;
}

const load: KeyedLoad = { target: 'accounts', staging: 'batch', key: ['id', 'region'], orderBy: 'seq' };

function sql(value: unknown): string {
  if (value === null) return 'NULL';
  if (typeof value === 'string') return `'${value.replaceAll("'", "''")}'`;
  return String(value);
}

/** Replaces the staging table with these events (an empty batch keeps its columns). */
async function stage(connection: DuckDBConnection, events: readonly Event[]): Promise<void> {
  await connection.run(
    'CREATE OR REPLACE TABLE batch (id BIGINT, region VARCHAR, seq BIGINT, op VARCHAR, name VARCHAR, amount DOUBLE)',
  );
  if (events.length === 0) return;
  const values = events.map(
    (e) => `(${[e.id, e.region, e.seq, e.op, e.name, e.amount].map(sql).join(', ')})`,
  );
  await connection.run(`INSERT INTO batch VALUES ${values.join(', ')}`);
}

/** A table's columns and rows, rows sorted, so two states compare with `toEqual`. */
async function contents(connection: DuckDBConnection, table: string) {
  const reader = await connection.runAndReadAll(`SELECT * FROM "${table}" ORDER BY ALL`);
  return { columns: reader.columnNames(), rows: reader.getRowsJS() };
}

async function state(connection: DuckDBConnection) {
  return {
    target: await contents(connection, 'accounts'),
    deletes: await contents(connection, 'accounts__deletes'),
  };
}

type Pattern = (connection: DuckDBConnection, load: KeyedLoad) => Promise<LoadResult>;

/** Applies the batches in turn to a fresh database and returns the resulting state. */
async function applyAll(pattern: Pattern, batches: readonly (readonly Event[])[]) {
  const instance = await DuckDBInstance.create(':memory:', { threads: '1' });
  const connection = await instance.connect();
  try {
    for (const batch of batches) {
      await stage(connection, batch);
      await pattern(connection, load);
    }
    const before = await state(connection);
    // Idempotent: every batch once more changes nothing.
    for (const batch of batches) {
      await stage(connection, batch);
      await pattern(connection, load);
    }
    expect(await state(connection)).toEqual(before);
    return before;
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

/** Events over 8 entities with few sequence numbers, so ties, exact duplicates and late deletes all occur. */
function generateEvents(seed: number, count: number): Event[] {
  const next = random(seed);
  const pick = <T>(items: readonly T[]) => items[Math.floor(next() * items.length)]!;
  const events: Event[] = [];
  for (let i = 0; i < count; i++) {
    if (i > 0 && next() < 0.1) {
      events.push(pick(events));
      continue;
    }
    const op = pick(['insert', 'update', 'update', 'delete'] as const);
    events.push({
      id: 1 + Math.floor(next() * 4),
      region: pick(['eu', 'us']),
      seq: 1 + Math.floor(next() * 12),
      op,
      name: op === 'delete' ? null : pick(['ann', 'bob', 'cy', null]),
      amount: op === 'delete' ? null : pick([1.5, 2, 10, null]),
    });
  }
  return events;
}

/** The events in a seeded order, cut into 1 to 5 batches of random sizes. */
function arrivals(events: readonly Event[], seed: number): Event[][] {
  const next = random(seed);
  const order = [...events];
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const cuts = Array.from({ length: Math.floor(next() * 5) }, () => Math.floor(next() * order.length)).sort(
    (a, b) => a - b,
  );
  return [0, ...cuts, order.length]
    .slice(1)
    .map((end, i, ends) => order.slice(i === 0 ? 0 : ends[i - 1], end));
}

describe('Load patterns', () => {
  let instance: DuckDBInstance;
  let connection: DuckDBConnection;
  beforeEach(async () => {
    instance = await DuckDBInstance.create(':memory:', { threads: '1' });
    connection = await instance.connect();
  });
  afterEach(() => {
    connection.closeSync();
    instance.closeSync();
  });

  const event = (id: number, seq: number, op: Event['op'], name: string | null = null): Event => ({
    id,
    region: 'eu',
    seq,
    op,
    name,
    amount: null,
  });

  describe('Function: snapshot', () => {
    it('replaces the whole table with the batch, whatever the row order', async () => {
      await stage(connection, [event(1, 1, 'insert', 'a'), event(2, 1, 'insert', 'b')]);
      await snapshot(connection, load);
      const rows = [event(3, 2, 'insert', 'c'), event(4, 2, 'insert', 'd'), event(5, 2, 'insert', 'e')];
      const results = [];
      for (const seed of [1, 2, 3]) {
        await stage(connection, arrivals(rows, seed).flat());
        expect(await snapshot(connection, load)).toEqual({ rows: 3 });
        results.push(await contents(connection, 'accounts'));
      }
      expect(results[0]?.rows.map((r) => r[0])).toEqual([3n, 4n, 5n]);
      expect(results[1]).toEqual(results[0]);
      expect(results[2]).toEqual(results[0]);
    });
  });

  describe('Function: cdcUpsert', () => {
    it('keeps the latest event per key, and a winning delete removes the row even against late events', async () => {
      await stage(connection, [
        event(1, 1, 'insert', 'a'),
        event(2, 1, 'insert', 'b'),
        event(1, 3, 'update', 'a2'),
      ]);
      expect(await cdcUpsert(connection, load)).toEqual({ rows: 2, deletes: 0 });
      await stage(connection, [event(2, 5, 'delete'), event(1, 2, 'update', 'stale')]);
      expect(await cdcUpsert(connection, load)).toEqual({ rows: 1, deletes: 1 });
      // Older than the delete: stays deleted. Newer: comes back.
      await stage(connection, [event(2, 4, 'update', 'too late')]);
      await cdcUpsert(connection, load);
      expect((await contents(connection, 'accounts')).rows.map((r) => [r[0], r[3]])).toEqual([[1n, 'a2']]);
      await stage(connection, [event(2, 6, 'insert', 'back')]);
      expect(await cdcUpsert(connection, load)).toEqual({ rows: 2, deletes: 0 });
      expect(await contents(connection, 'accounts')).toEqual({
        columns: ['id', 'region', 'seq', 'name', 'amount'],
        rows: [
          [1n, 'eu', 3n, 'a2', null],
          [2n, 'eu', 6n, 'back', null],
        ],
      });
    });

    it('breaks ties on the ordering value the same way in any arrival order: delete first, then smallest row', async () => {
      const tied = [
        event(1, 7, 'update', 'b'),
        event(1, 7, 'update', 'a'),
        event(2, 7, 'update', 'x'),
        event(2, 7, 'delete'),
      ];
      const results = [];
      for (const seed of [1, 2, 3, 4]) results.push(await applyAll(cdcUpsert, arrivals(tied, seed)));
      for (const result of results) expect(result).toEqual(results[0]);
      expect(results[0]?.target.rows).toEqual([[1n, 'eu', 7n, 'a', null]]);
      expect(results[0]?.deletes.rows).toEqual([[2n, 'eu', 7n]]);
    });

    it('gives the same table for every arrival order and batch split of the same events', async () => {
      for (const eventsSeed of [11, 12]) {
        const events = generateEvents(eventsSeed, 60);
        const reference = await applyAll(cdcUpsert, [events]);
        expect(reference.target.rows.length).toBeGreaterThan(0);
        expect(reference.deletes.rows.length).toBeGreaterThan(0);
        for (const seed of [1, 2, 3, 4, 5, 6]) {
          expect(await applyAll(cdcUpsert, arrivals(events, seed))).toEqual(reference);
        }
      }
    });

    it('treats every row as an upsert when there is no operation column', async () => {
      await connection.run(
        `CREATE TABLE batch AS SELECT * FROM (VALUES (1, 'eu', 2, 'new'), (1, 'eu', 1, 'old')) t(id, region, seq, name)`,
      );
      expect(await cdcUpsert(connection, { ...load, operationColumn: null })).toEqual({
        rows: 1,
        deletes: 0,
      });
      expect((await contents(connection, 'accounts')).rows).toEqual([[1, 'eu', 2, 'new']]);
    });

    it('refuses a batch with unknown operations, null ordering values or missing columns', async () => {
      await stage(connection, [
        { ...event(1, 1, 'insert'), op: 'upsert' as Event['op'] },
        event(2, 1, 'insert'),
      ]);
      await expect(cdcUpsert(connection, load)).rejects.toThrow(
        'staging table batch: op must be one of insert, update, delete; found upsert',
      );
      await stage(connection, [{ ...event(1, 1, 'insert'), seq: null as unknown as number }]);
      await expect(cdcUpsert(connection, load)).rejects.toThrow('1 rows have no seq');
      await stage(connection, []);
      await expect(cdcUpsert(connection, { ...load, operationColumn: 'kind' })).rejects.toThrow(
        LoadPatternError,
      );
      await expect(cdcUpsert(connection, { ...load, staging: 'nowhere' })).rejects.toThrow('does not exist');
      // Nothing was created by the refused loads.
      const tables = await connection.runAndReadAll(
        "SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'accounts%'",
      );
      expect(tables.getRowsJS()).toEqual([]);
    });
  });

  describe('Function: scd2', () => {
    const versions = async () =>
      (
        await connection.runAndReadAll(
          'SELECT id, name, valid_from, valid_to, is_current FROM accounts ORDER BY id, valid_from',
        )
      )
        .getRowsJS()
        .map((row) => row.map((v) => (typeof v === 'bigint' ? Number(v) : v)));

    it('inserts a late event into the history at its place, splitting the interval', async () => {
      await stage(connection, [event(1, 1, 'insert', 'A'), event(1, 5, 'update', 'C')]);
      await scd2(connection, load);
      expect(await versions()).toEqual([
        [1, 'A', 1, 5, false],
        [1, 'C', 5, null, true],
      ]);
      await stage(connection, [event(1, 3, 'update', 'B')]);
      expect(await scd2(connection, load)).toEqual({ rows: 3, deletes: 0 });
      expect(await versions()).toEqual([
        [1, 'A', 1, 3, false],
        [1, 'B', 3, 5, false],
        [1, 'C', 5, null, true],
      ]);
      const columns = (await contents(connection, 'accounts')).columns;
      expect(columns).toEqual([
        'id',
        'region',
        'seq',
        'name',
        'amount',
        'valid_from',
        'valid_to',
        'is_current',
      ]);
    });

    it('closes the current version on delete, also when the delete arrives before what it deletes', async () => {
      await stage(connection, [event(1, 1, 'insert', 'A'), event(1, 4, 'delete')]);
      await scd2(connection, load);
      expect(await versions()).toEqual([[1, 'A', 1, 4, false]]);
      await stage(connection, [event(2, 9, 'delete')]);
      expect(await scd2(connection, load)).toEqual({ rows: 1, deletes: 2 });
      await stage(connection, [
        event(2, 2, 'insert', 'X'),
        event(1, 6, 'insert', 'A again'),
        event(2, 3, 'update', 'Y'),
      ]);
      await scd2(connection, load);
      expect(await versions()).toEqual([
        [1, 'A', 1, 4, false],
        [1, 'A again', 6, null, true],
        [2, 'X', 2, 3, false],
        [2, 'Y', 3, 9, false],
      ]);
      // The same batch again changes nothing.
      await scd2(connection, load);
      expect(await versions()).toHaveLength(4);
    });

    it('gives the same history for every arrival order and batch split of the same events', async () => {
      for (const eventsSeed of [21, 22]) {
        const events = generateEvents(eventsSeed, 60);
        const reference = await applyAll(scd2, [events]);
        const current = reference.target.rows.filter((row) => row.at(-1) === true);
        expect(current.length).toBeGreaterThan(0);
        expect(current.length).toBeLessThan(reference.target.rows.length);
        for (const seed of [1, 2, 3, 4, 5, 6]) {
          expect(await applyAll(scd2, arrivals(events, seed))).toEqual(reference);
        }
      }
    });

    it('refuses a batch that already has SCD2 columns', async () => {
      await connection.run(
        `CREATE TABLE batch AS SELECT 1 AS id, 'eu' AS region, 1 AS seq, 'insert' AS op, 1 AS valid_from`,
      );
      await expect(scd2(connection, load)).rejects.toThrow('column valid_from is reserved');
    });
  });
});
