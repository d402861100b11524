import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { MALLOC_ENV } from '../../shared/runtime-memory.ts';

describe('MALLOC_ENV', () => {
  it('is what bin/sluice.js sets in its shebang (it must be set before the process starts)', async () => {
    const shebang = (await readFile(new URL('../../bin/sluice.js', import.meta.url), 'utf8')).split('\n')[0]!;
    const assignments = Object.fromEntries(
      [...shebang.matchAll(/\b(MALLOC_[A-Z_]+)=(\S+)/g)].map((m) => [m[1], m[2]]),
    );
    expect(assignments).toEqual(MALLOC_ENV);
    // Linux reads at most 127 bytes of a shebang line on older kernels.
    expect(shebang.length).toBeLessThanOrEqual(127);
  });
});
