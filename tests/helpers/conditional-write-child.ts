/**
 * A child process for the cross-process race of conditional writes (tests/integration/file-object-store.test.ts):
 * several of these share one store folder, and the test sends each the same command at the same moment.
 *
 *   node --import tsx conditional-write-child.ts <store root> <writer name>
 *
 * Prints `ready`, then for every stdin line `{"key", "ifAbsent"?, "ifMatch"?}` writes `<writer name>` to the
 * key with that condition and prints `{"won": true, "etag"}` or `{"won": false}` (PreconditionFailedError).
 * Any other error ends the process with a non-zero code.
 */
import { createInterface } from 'node:readline';
import { FileObjectStore } from '../../shared/adapters/local/file-object-store.ts';
import { PreconditionFailedError } from '../../shared/errors.ts';
import type { WriteOptions } from '../../shared/ports/object-store.ts';

const [root, writer] = process.argv.slice(2) as [string, string];
const store = new FileObjectStore(root);

process.stdout.write('ready\n');
for await (const line of createInterface({ input: process.stdin })) {
  const { key, ...options } = JSON.parse(line) as WriteOptions & { key: string };
  try {
    const info = await store.write(key, writer, options);
    process.stdout.write(`${JSON.stringify({ won: true, etag: info.etag })}\n`);
  } catch (error) {
    if (!(error instanceof PreconditionFailedError)) throw error;
    process.stdout.write(`${JSON.stringify({ won: false })}\n`);
  }
}
