import { join } from 'node:path';

/** Real public inputs nobody on this project wrote (see tests/fixtures/README.md). */
export const FIXTURES = join(import.meta.dirname, '..', 'fixtures');
/** The CMS Transparency in Coverage sample files. */
export const TIC_EXAMPLES = join(FIXTURES, 'tic', 'examples');
/** The CMS JSON Schemas. */
export const TIC_SCHEMAS = join(FIXTURES, 'tic', 'schemas');
/** The JSONTestSuite's test_parsing files (y_ accept, n_ reject, i_ either). */
export const JSON_TEST_SUITE = join(FIXTURES, 'json-test-suite', 'test_parsing');

/** A TiC table of contents of one plan listing `files` (each a description and the URL of an in-network file). */
export function tableOfContents(files: readonly { description: string; location: string }[]) {
  return {
    reporting_entity_name: 'sluice test',
    reporting_entity_type: 'health insurance issuer',
    last_updated_on: '2026-01-01',
    version: '2.0.0',
    reporting_structure: [
      {
        reporting_plans: [
          {
            plan_name: 'plan a',
            plan_id_type: 'hios',
            plan_id: '1111111111',
            plan_market_type: 'individual',
            issuer_name: 'Acme',
          },
        ],
        in_network_files: files,
      },
    ],
  };
}
