// The entry of a silver worker thread. A worker inherits neither the tsx loader that `bin/sluice.js`
// registers nor vitest's transform (and in Node 20 not even a `--import tsx` hook), so it registers tsx
// itself — resolved from this file, whatever the working directory — before loading the TypeScript.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
