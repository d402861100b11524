/**
 * A child process for the download SIGKILL drill (tests/integration/download-invocations.test.ts): runs
 * `downloadToLanding` invocation after invocation, each stopping after one part (as a Lambda whose time
 * has run out), into a local landing folder, printing `partial <bytes> <invocations>` after each and
 * `landed <bytes> <invocations> <sha256>` at the end. The test kills it and starts it again.
 *
 *   node --import tsx download-child.ts <url> <landing dir> <scratch dir> <part bytes>
 */

import { downloadToLanding } from '../../shared/stages/download/download.ts';
import { CircuitBreaker } from '../../shared/stages/download/resilience.ts';
import { fileStore, fixedClock } from './lake.ts';

const [url, landingDir, scratchDir, partBytes] = process.argv.slice(2) as [string, string, string, string];
for (;;) {
  const outcome = await downloadToLanding(
    { url, dataset: 'ds' },
    {
      landing: fileStore(landingDir),
      secrets: { getSecret: async () => '' },
      clock: fixedClock,
      fetchOptions: {
        allowLoopback: true,
        allowInsecureHttp: true,
        baseDelayMs: 5,
        maxDelayMs: 50,
        circuitBreaker: new CircuitBreaker({ failureThreshold: 100 }),
      },
      budget: { shouldStop: () => true },
      scratchDir,
      partBytes: Number(partBytes),
    },
  );
  if (outcome.status === 'landed') {
    process.stdout.write(`landed ${outcome.bytes} ${outcome.invocations} ${outcome.sha256}\n`);
    break;
  }
  process.stdout.write(`partial ${outcome.bytes} ${outcome.invocations}\n`);
}
