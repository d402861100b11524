import { defineConfig } from 'vitest/config';

/**
 * Two groups. Most files run two at a time (the CI machine has 2 cores, and most tests wait on child
 * processes, moto or disks as much as they compute). The drills that enforce deadlines on purpose
 * (Lambda's timeout under `--lambda-limits`, SIGKILL at seeded points, pacing at a configured rate) run
 * afterwards, one at a time, so that a neighbour's load is not what they measure.
 */
const DRILLS = [
  'tests/integration/lambda-limits.test.ts',
  'tests/integration/limits-drill.test.ts',
  'tests/integration/kill-drill.test.ts',
  'tests/integration/bulk-drop.test.ts',
];

const shared = {
  testTimeout: 120_000,
  hookTimeout: 120_000,
  pool: 'forks' as const,
};

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          ...shared,
          name: 'tests',
          include: ['tests/**/*.test.ts'],
          exclude: DRILLS,
          maxWorkers: 2,
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          ...shared,
          name: 'drills',
          include: DRILLS,
          maxWorkers: 1,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
