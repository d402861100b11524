import { describe, expect, it } from 'vitest';
import { parseDatasetConfig } from '../../shared/contracts/dataset-config.ts';
import { MalformedInputError, MissingRecordPathError } from '../../shared/errors.ts';
import { readCsvRecords } from '../../shared/stages/bronze/csv-records.ts';
import { seededRandom } from '../helpers/random.ts';

const dataset = parseDatasetConfig({ name: 'rows', format: 'csv' });

/** The records a CSV text (or its bytes, chunk by chunk) becomes in bronze, as the JSON text bronze stores. */
async function records(csv: string | AsyncIterable<Buffer>, config = dataset): Promise<string[]> {
  async function* whole() {
    yield Buffer.from(csv as string);
  }
  const out: string[] = [];
  const source = readCsvRecords(typeof csv === 'string' ? whole() : csv, config, 'file:///rows.csv');
  for await (const _ of source.batches((_target, _index, _offset, bytes) => out.push(bytes.toString()))) {
    // records are collected by the handler
  }
  return out;
}

describe('readCsvRecords', () => {
  it('keeps columns named __proto__, constructor and hasOwnProperty like any other', async () => {
    expect(await records('__proto__,constructor,hasOwnProperty,toString\na,b,c,d\n')).toEqual([
      '{"__proto__":"a","constructor":"b","hasOwnProperty":"c","toString":"d"}',
    ]);
  });

  it('fails a header row that names a column twice, with the names, positions and what to do', async () => {
    const error = await records('id,a,a,b,b\n1,2,3,4,5\n').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MalformedInputError);
    expect((error as Error).message).toContain('"a" (columns 2 and 3), "b" (columns 4 and 5)');
    expect((error as Error).message).toContain('rename the duplicates in the header row');
  });

  it('still keeps the extras of a long row and lets a short row lack columns', async () => {
    expect(await records('a,b\n1,2,3\n4\n')).toEqual(['{"a":"1","b":"2","_extra":["3"]}', '{"a":"4"}']);
  });

  it('fails a long row when the header row names a column _extra, whose value its extras would replace', async () => {
    // On main bronze kept {"_extra":["3"]} for the second row: its _extra cell, x2, was gone (exit 0).
    expect(await records('a,_extra\n1,x1\n')).toEqual(['{"a":"1","_extra":"x1"}']);
    const error = await records('a,_extra\n1,x1\n2,x2,3\n').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MalformedInputError);
    expect((error as MalformedInputError).message).toContain('column 2 is named "_extra"');
    expect((error as MalformedInputError).message).toContain('at byte 14');
  });

  describe('with a silver table', () => {
    const accounts = parseDatasetConfig({
      name: 'accounts',
      format: 'csv',
      silver: {
        table: 'accounts',
        columns: [
          { name: 'account_id', type: 'integer', source: 'Account Id' },
          { name: 'owner', type: 'string' },
        ],
      },
    });
    const failure = async (csv: string): Promise<Error> =>
      records(csv, accounts).then(
        () => new Error('no failure'),
        (e: unknown) => e as Error,
      );

    // On main each of these ran to "reconciled", exit 0: every row in silver, every column NULL, a
    // warning per column, and the file the source's current version.
    it('fails a header row that names none of the columns, read with the wrong delimiter, saying which', async () => {
      const error = await failure('Account Id;owner\n1;ann\n');
      expect(error).toBeInstanceOf(MissingRecordPathError);
      expect(error.message).toContain('names none of the columns of table accounts');
      expect(error.message).toContain('it has "Account Id;owner"; the columns read "Account Id", "owner"');
      expect(error.message).toContain('set "csv": { "delimiter": ";" }');
    });

    it('fails an HTML page saved in place of the CSV, and a header that names the columns in another case', async () => {
      const page = await failure('<!DOCTYPE html>\n<title>503 Service Unavailable</title>\n');
      expect(page).toBeInstanceOf(MissingRecordPathError);
      expect(page.message).toContain('an HTML or XML page');
      const upper = await failure('ACCOUNT ID,OWNER\n1,ann\n');
      expect(upper).toBeInstanceOf(MissingRecordPathError);
      expect(upper.message).toContain('in another case: set each column\'s "source"');
    });

    it("reads a header row that names one of the columns: the others are the config's business", async () => {
      expect(await records('owner,note\nann,x\n', accounts)).toEqual(['{"owner":"ann","note":"x"}']);
    });
  });

  it('fails bytes that are not UTF-8 (a Latin-1 export) at their offset, instead of storing U+FFFD', async () => {
    async function* latin1() {
      yield Buffer.from('id,owner\n1,Jos\xe9\n', 'latin1');
    }
    const error = await records(latin1()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MalformedInputError);
    expect((error as MalformedInputError).byteOffset).toBe(14);
    expect((error as Error).message).toContain('byte 0xe9 is not UTF-8');
  });

  it('reads a UTF-8 character split between two chunks, at every split', async () => {
    const bytes = Buffer.from('id,owner\n1,José 😀\n');
    for (let cut = 1; cut < bytes.length; cut++) {
      async function* split() {
        yield bytes.subarray(0, cut);
        yield bytes.subarray(cut);
      }
      expect(await records(split())).toEqual(['{"id":"1","owner":"José 😀"}']);
    }
  });

  it('fails an input that ends inside a UTF-8 sequence', async () => {
    async function* cut() {
      yield Buffer.from('id,owner\n1,Jos\xc3', 'latin1');
    }
    const error = await records(cut()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MalformedInputError);
    expect((error as MalformedInputError).byteOffset).toBe(14);
  });

  it('fails with the error of its input (a truncated gzip, a failed read) as it is', async () => {
    const cause = new Error('the gzip stream ends early');
    async function* failing() {
      yield Buffer.from('id,owner\n1,a\n');
      throw cause;
    }
    await expect(records(failing())).rejects.toBe(cause);
  });

  it('ends a row at every line end, CRLF, LF or CR, also when a file mixes them', async () => {
    const rows = [
      '{"id":"1","note":"a"}',
      '{"id":"2","note":"b"}',
      '{"id":"3","note":"c"}',
      '{"id":"4","note":"d"}',
    ];
    const mixed = Buffer.from('id,note\r\n1,a\r\n2,b\n3,c\r4,"d"\r\n');
    expect(await records(mixed.toString())).toEqual(rows);
    expect(await records('id,note\n1,a\n2,b\r\n3,c\n4,d\n')).toEqual(rows);
    for (let cut = 1; cut < mixed.length; cut++) {
      async function* split() {
        yield mixed.subarray(0, cut);
        yield mixed.subarray(cut);
      }
      expect(await records(split())).toEqual(rows);
    }
  });

  it('keeps a line end inside quotes as part of the cell', async () => {
    expect(await records('id,note\r\n1,"a\nb\r\nc"\r\n')).toEqual(['{"id":"1","note":"a\\nb\\r\\nc"}']);
  });

  it("reads a quote written twice as the quote, whatever the quote character (`'O''Brien'`, `'5\"'`)", async () => {
    const single = parseDatasetConfig({ name: 'rows', format: 'csv', csv: { quote: "'" } });
    async function* text() {
      yield Buffer.from("id,name\n1,'O''Brien'\n2,'size 5\"'\n3,'a, \"b\"'\n");
    }
    const out: string[] = [];
    const source = readCsvRecords(text(), single, 'file:///rows.csv');
    for await (const _ of source.batches((_t, _i, _o, bytes) => out.push(bytes.toString()))) {
      // records are collected by the handler
    }
    expect(out.map((line) => JSON.parse(line).name)).toEqual(["O'Brien", 'size 5"', 'a, "b"']);
  });
});

describe('readCsvRecords in slices', () => {
  /** `bytes` in chunks of random sizes (1 to 40 bytes), noting where the last one handed out starts. */
  function chunked(bytes: Buffer, random: () => number, last: { start: number }, base: number) {
    return (async function* () {
      for (let at = 0; at < bytes.length; ) {
        const end = Math.min(bytes.length, at + 1 + Math.floor(random() * 40));
        last.start = base + at;
        yield bytes.subarray(at, end);
        at = end;
      }
    })();
  }

  it('pauses after a row inside the last chunk read, and resumes there to the same rows and offsets', async () => {
    const ends = ['\r\n', '\n', '\r'];
    const rows = Array.from({ length: 300 }, (_, i) => {
      const cell = i % 5 === 0 ? `"quoted\r\nline ""${i}"" ✓"` : i % 7 === 0 ? '\ufeffmark' : `cell ${i}`;
      return `${i},${cell}${ends[i % 3]}`;
    });
    const text = Buffer.from(`\ufeffid,note\r\n${rows.join('')}`);
    const single: [number, number, string][] = [];
    const whole = readCsvRecords(chunked(text, seededRandom(1), { start: 0 }, 0), dataset, 'file:///r.csv');
    for await (const _ of whole.batches((_t, index, offset, bytes) =>
      single.push([index, offset, `${bytes}`]),
    )) {
      // collected by the handler
    }
    expect(single).toHaveLength(300);

    for (const seed of [2, 3, 4, 5]) {
      const random = seededRandom(seed);
      const sliced: [number, number, string][] = [];
      let resume: { position: number; columns: string[]; records: number } | undefined;
      let slices = 0;
      for (;;) {
        slices++;
        const last = { start: 0 };
        const from = resume?.position ?? 0;
        const source = readCsvRecords(
          chunked(text.subarray(from), random, last, from),
          dataset,
          'file:///r.csv',
          {
            resume,
          },
        );
        let paused = false;
        for await (const _ of source.batches((_t, index, offset, bytes) => {
          sliced.push([index, offset, `${bytes}`]);
          if (random() < 0.05) paused = source.pause() || paused;
        })) {
          // collected by the handler
        }
        if (!paused) break;
        // The resume point lies in the last chunk read: a resumable source can continue there.
        expect(source.bytesScanned()).toBeGreaterThanOrEqual(last.start);
        resume = { position: source.bytesScanned(), ...source.resumeState() };
      }
      expect(slices, `seed ${seed}`).toBeGreaterThan(3);
      expect(sliced, `seed ${seed}`).toEqual(single);
    }
  });
});

describe('readCsvRecords in slices, at the end of the input', () => {
  it('never pauses on the rows the end brings, so a cut-off last row fails as in one pass', async () => {
    const text = 'a,b,c\n1,2,3\nxxxxxxxxxxxxxxxxxxxx,yyyy';
    async function* whole() {
      yield Buffer.from(text);
    }
    const source = readCsvRecords(whole(), dataset, 'file:///t.csv');
    const pauses: boolean[] = [];
    const error = await (async () => {
      for await (const _ of source.batches(() => pauses.push(source.pause()))) {
        // every row asks to pause
      }
    })().catch((e: unknown) => e);
    // The first row pauses (the next slice would go on from it); the cut-off last row comes with the end.
    expect(pauses).toEqual([true]);
    expect(error).toBeUndefined();
    const rest = readCsvRecords(
      (async function* () {
        yield Buffer.from(text.slice(source.bytesScanned()));
      })(),
      dataset,
      'file:///t.csv',
      { resume: { position: source.bytesScanned(), ...source.resumeState() } },
    );
    const restPauses: boolean[] = [];
    const failure = await (async () => {
      for await (const _ of rest.batches(() => restPauses.push(rest.pause()))) {
        // the last row asks to pause too
      }
    })().catch((e: unknown) => e);
    expect(restPauses).toEqual([false]);
    expect(failure).toBeInstanceOf(MalformedInputError);
    expect((failure as Error).message).toContain('the last row has 2 of 3 cells');
  });
});
