import type { TableSpec } from '../../contracts/silver/table.ts';
import { QUARANTINE_TABLE } from '../../lake/keys.ts';

/** The quarantine table: one row per rule a quarantined record broke, with the record itself. */
export const quarantineTable: TableSpec = {
  name: QUARANTINE_TABLE,
  description:
    'Records set aside by a quarantine rule: which rule, where in the record, why, and the record.',
  columns: [
    { name: 'record_path', type: 'VARCHAR', nullable: false },
    { name: 'rule_id', type: 'VARCHAR', nullable: false },
    { name: 'severity', type: 'VARCHAR', nullable: false },
    { name: 'field_path', type: 'VARCHAR', nullable: false },
    { name: 'message', type: 'VARCHAR', nullable: false },
    { name: 'record', type: 'VARCHAR', nullable: false, description: 'the record as JSON' },
  ],
  key: ['record_path', '_record_index', 'rule_id', 'field_path'],
};
