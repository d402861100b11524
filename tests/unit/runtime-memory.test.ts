import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { MALLOC_ENV, NODE_FLAGS } from '../../shared/runtime-memory.ts';

describe('bin/sluice.js', async () => {
  const shebang = (await readFile(new URL('../../bin/sluice.js', import.meta.url), 'utf8')).split('\n')[0]!;

  it('sets MALLOC_ENV in its shebang (it must be set before the process starts)', () => {
    const assignments = Object.fromEntries(
      [...shebang.matchAll(/\b(MALLOC_[A-Z_]+)=(\S+)/g)].map((m) => [m[1], m[2]]),
    );
    expect(assignments).toEqual(MALLOC_ENV);
  });

  it('runs node with NODE_FLAGS, as the bench does', () => {
    const node = shebang.split(/\s+/).indexOf('node');
    expect(node).toBeGreaterThan(0);
    expect(shebang.split(/\s+/).slice(node + 1)).toEqual(NODE_FLAGS);
  });

  it('fits the shebang length older kernels read (127 bytes)', () => {
    expect(shebang.length).toBeLessThanOrEqual(127);
  });
});
