import { join } from 'node:path';

/** Real public inputs nobody on this project wrote (see tests/fixtures/README.md). */
export const FIXTURES = join(import.meta.dirname, '..', 'fixtures');
/** The CMS Transparency in Coverage sample files. */
export const TIC_EXAMPLES = join(FIXTURES, 'tic', 'examples');
/** The CMS JSON Schemas. */
export const TIC_SCHEMAS = join(FIXTURES, 'tic', 'schemas');
/** The JSONTestSuite's test_parsing files (y_ accept, n_ reject, i_ either). */
export const JSON_TEST_SUITE = join(FIXTURES, 'json-test-suite', 'test_parsing');
