// Runs s3rver in its own Node process, started by tests/helpers/s3-server.ts.
// It needs `node --openssl-legacy-provider`: s3rver 3.7.1 encrypts ListObjectsV2 continuation tokens
// with DES, which OpenSSL 3 only offers through the legacy provider (without it, paging answers 500).
// Usage: node --openssl-legacy-provider s3rver-main.mjs <directory>
// Prints one JSON line `{"port": <n>}` on stdout once it listens; exits when stdin closes or on SIGTERM,
// so a crashed test runner never leaves the server behind.
import S3rver from 's3rver';

const directory = process.argv[2];
if (!directory) {
  process.stderr.write('usage: s3rver-main.mjs <directory>\n');
  process.exit(2);
}

const server = new S3rver({ address: '127.0.0.1', port: 0, directory, silent: true });
const { port } = await server.run();
process.stdout.write(`${JSON.stringify({ port })}\n`);

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  server.close(() => process.exit(0));
  // Keep-alive sockets can hold close() open; the parent is gone or done, so don't wait long.
  setTimeout(() => process.exit(0), 1000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.on('close', stop);
process.stdin.resume();
