import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

/** Every tracked file, as git lists it (the repository is checked out with its history, in CI too). */
const tracked = execFileSync('git', ['ls-files', '-z'], { encoding: 'utf8' }).split('\0').filter(Boolean);

describe('the repository', () => {
  it('holds no merge conflict markers (a conflicted README once landed)', () => {
    const conflicted: string[] = [];
    for (const path of tracked) {
      const text = readFileSync(path, 'latin1');
      if (text.includes('\0')) continue; // binary
      if (/^(<{7}|>{7}) /m.test(text)) conflicted.push(path);
    }
    expect(tracked.length).toBeGreaterThan(100);
    expect(conflicted).toEqual([]);
  });
});
