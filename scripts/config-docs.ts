// Writes the table of every deployment config field into docs/DEPLOY.md, from the zod schema
// (infra/config/deployment-config.ts). Run after changing the schema: npm run docs:config
// tests/infra/deploy-doc.test.ts fails while the committed table differs.
import { readFileSync, writeFileSync } from 'node:fs';
import { withConfigFieldsTable } from '../infra/config/config-docs.ts';

const path = new URL('../docs/DEPLOY.md', import.meta.url);
const before = readFileSync(path, 'utf8');
const after = withConfigFieldsTable(before);
if (after !== before) writeFileSync(path, after);
console.log(`docs/DEPLOY.md: config table ${after === before ? 'already up to date' : 'written'}`);
