// Taking over a database of the classic Go nightwatch (jianghushinian/blog-go-example, nightwatch/:
// assets/schema.sql and pkg/model/task.go): one table `task`
//   id bigint(20) AUTO_INCREMENT, name varchar(45), namespace varchar(45), info TEXT,
//   status varchar(45) DEFAULT '', user_id bigint(20) DEFAULT '0', created_at datetime,
//   updated_at datetime ON UPDATE CURRENT_TIMESTAMP, PRIMARY KEY (id), UNIQUE KEY uk_name_namespace (name, namespace)
// and no `_prisma_migrations`. `upgradeClassic` brings such a table to exactly what the first migration
// (20261122000000_create_task) makes, in one ALTER TABLE (atomic in MariaDB/MySQL: all of it or none),
// so the migration runner can record that migration as applied (a baseline, as `prisma migrate
// resolve --applied` does) and apply the rest as usual. Anything else is refused, naming the difference.
import type { Connection } from 'mariadb';

/** The migration the classic table is brought to; the runner records it as applied. */
export const BASELINE_MIGRATION = '20261122000000_create_task';

interface ColumnInfo {
  name: string;
  dataType: string;
  columnType: string;
  nullable: boolean;
  extra: string;
  maxLength: number | null;
}

interface IndexInfo {
  name: string;
  unique: boolean;
  columns: string[];
}

/** What a classic column may be: its data types (lower case) and, for strings, the longest declared length accepted. */
const CLASSIC_COLUMNS: Record<string, { types: string[]; maxLength?: number }> = {
  id: { types: ['bigint', 'int'] },
  name: { types: ['varchar'], maxLength: 253 },
  namespace: { types: ['varchar'], maxLength: 253 },
  info: { types: ['text', 'mediumtext', 'longtext'] },
  status: { types: ['varchar'] },
  // bigint in the classic schema; a varchar user id (up to nightwatch's 64) is taken as well.
  user_id: { types: ['bigint', 'int', 'varchar'], maxLength: 64 },
  created_at: { types: ['datetime', 'timestamp'] },
  updated_at: { types: ['datetime', 'timestamp'] },
};

/** The columns 20261122000000_create_task adds to the classic ones, as information_schema shows them. */
const ADDED_COLUMNS: Record<string, string> = {
  reason: 'text',
  attempt: 'int(10) unsigned',
  started_at: 'datetime(3)',
  finished_at: 'datetime(3)',
};
/** The classic columns as 20261122000000_create_task declares them (COLUMN_TYPE). */
const BASELINE_TYPES: Record<string, string> = {
  id: 'bigint(20) unsigned',
  name: 'varchar(253)',
  namespace: 'varchar(253)',
  info: 'longtext',
  status: 'varchar(32)',
  user_id: 'varchar(64)',
  created_at: 'datetime(3)',
  updated_at: 'datetime(3)',
  ...ADDED_COLUMNS,
};

/** The classic statuses (pkg/model/task.go); `Unknown` is what it wrote for a Job neither active nor finished. */
const CLASSIC_UNKNOWN = 'Unknown';
const STATUS_MAX = 32;

export type ClassicShape =
  /** The classic table, to be upgraded. */
  | { kind: 'classic'; columns: Map<string, ColumnInfo>; uniqueIndex: string }
  /** Already what the first migration makes (an upgrade whose baseline was not recorded): baseline only. */
  | { kind: 'baseline' }
  /** Not recognised; `differences` say why. */
  | { kind: 'unknown'; differences: string[] };

/** Looks at a database without `_prisma_migrations` whose only table is `task`. */
export async function inspectClassic(conn: Connection, database: string, tables: string[]): Promise<ClassicShape> {
  if (tables.length !== 1 || tables[0] !== 'task') {
    const extra = tables.filter((t) => t !== 'task');
    return {
      kind: 'unknown',
      differences: [
        ...(tables.includes('task') ? [] : ['there is no `task` table']),
        ...(extra.length > 0 ? [`tables other than \`task\`: ${extra.join(', ')}`] : []),
      ],
    };
  }
  const rows: {
    name: string;
    data_type: string;
    column_type: string;
    is_nullable: string;
    extra: string;
    max_length: number | bigint | null;
  }[] = await conn.query(
    `SELECT column_name AS name, data_type, column_type, is_nullable, extra, character_maximum_length AS max_length
       FROM information_schema.columns WHERE table_schema = ? AND table_name = 'task' ORDER BY ordinal_position`,
    [database],
  );
  const columns = new Map<string, ColumnInfo>(
    rows.map((r) => [
      r.name,
      {
        name: r.name,
        dataType: r.data_type.toLowerCase(),
        columnType: r.column_type.toLowerCase(),
        nullable: r.is_nullable === 'YES',
        extra: r.extra.toLowerCase(),
        maxLength: r.max_length === null ? null : Number(r.max_length),
      },
    ]),
  );
  const indexRows: { name: string; non_unique: number | bigint; column_name: string }[] = await conn.query(
    `SELECT index_name AS name, non_unique, column_name FROM information_schema.statistics
      WHERE table_schema = ? AND table_name = 'task' ORDER BY index_name, seq_in_index`,
    [database],
  );
  const indexes = new Map<string, IndexInfo>();
  for (const r of indexRows) {
    const index = indexes.get(r.name) ?? { name: r.name, unique: Number(r.non_unique) === 0, columns: [] };
    index.columns.push(r.column_name);
    indexes.set(r.name, index);
  }
  const [engine]: { engine: string | null }[] = await conn.query(
    `SELECT engine FROM information_schema.tables WHERE table_schema = ? AND table_name = 'task'`,
    [database],
  );

  const baseline = baselineDifferences(columns, indexes);
  if (baseline.length === 0) return { kind: 'baseline' };

  const differences: string[] = [];
  if (engine?.engine !== 'InnoDB') differences.push(`the table's engine is ${engine?.engine ?? 'unknown'}, not InnoDB`);
  for (const [name, want] of Object.entries(CLASSIC_COLUMNS)) {
    const have = columns.get(name);
    if (!have) {
      differences.push(`column \`${name}\` is missing`);
      continue;
    }
    if (!want.types.includes(have.dataType)) {
      differences.push(`column \`${name}\` is ${have.columnType}, expected ${want.types.join(' or ')}`);
    } else if (want.maxLength !== undefined && have.maxLength !== null && have.maxLength > want.maxLength) {
      differences.push(`column \`${name}\` is ${have.columnType}, longer than nightwatch's ${want.maxLength}`);
    }
    if (have.nullable) differences.push(`column \`${name}\` allows NULL, the classic schema does not`);
  }
  const id = columns.get('id');
  if (id && !id.extra.includes('auto_increment')) differences.push('column `id` is not AUTO_INCREMENT');
  const unexpected = [...columns.keys()].filter((c) => !(c in CLASSIC_COLUMNS));
  if (unexpected.length > 0) differences.push(`columns the classic schema does not have: ${unexpected.join(', ')}`);

  const primary = indexes.get('PRIMARY');
  if (primary?.columns.join(',') !== 'id') differences.push(`the primary key is (${primary?.columns.join(', ') ?? 'none'}), expected (id)`);
  const uniques = [...indexes.values()].filter((i) => i.name !== 'PRIMARY' && i.unique && i.columns.join(',') === 'name,namespace');
  if (uniques.length !== 1) differences.push('there is no unique index on (name, namespace)');
  const others = [...indexes.values()].filter((i) => i.name !== 'PRIMARY' && i !== uniques[0]);
  if (others.length > 0) {
    differences.push(`indexes the classic schema does not have: ${others.map((i) => `${i.name} (${i.columns.join(', ')})`).join(', ')}`);
  }
  if (differences.length > 0) return { kind: 'unknown', differences };
  return { kind: 'classic', columns, uniqueIndex: uniques[0]!.name };
}

/** Differences from the table as 20261122000000_create_task creates it (empty: it is that table). */
function baselineDifferences(columns: Map<string, ColumnInfo>, indexes: Map<string, IndexInfo>): string[] {
  const differences: string[] = [];
  for (const [name, type] of Object.entries(BASELINE_TYPES)) {
    const have = columns.get(name);
    if (have?.columnType !== type) differences.push(name);
  }
  if (columns.size !== Object.keys(BASELINE_TYPES).length) differences.push('columns');
  const shape = [...indexes.values()].map((i) => `${i.name}:${i.unique}:${i.columns.join(',')}`).sort();
  const want = ['PRIMARY:true:id', 'task_name_namespace_key:true:name,namespace', 'task_status_id_idx:false:status,id'];
  if (shape.join(' ') !== want.join(' ')) differences.push('indexes');
  return differences;
}

/**
 * Checks the rows can be carried over, then brings the classic table to the first migration's shape.
 * Reports each step through `log`; returns the steps.
 */
export async function upgradeClassic(
  conn: Connection,
  database: string,
  shape: Extract<ClassicShape, { kind: 'classic' }>,
  log: (line: string) => void,
): Promise<string[]> {
  const steps: string[] = [];
  const say = (line: string) => {
    steps.push(line);
    log(line);
  };
  const [stats]: { rows: bigint | number; min_id: bigint | number | null; status_len: bigint | number | null }[] = await conn.query(
    'SELECT COUNT(*) AS `rows`, MIN(id) AS min_id, MAX(CHAR_LENGTH(status)) AS status_len FROM `task`',
  );
  const problems: string[] = [];
  if (stats!.min_id !== null && Number(stats!.min_id) < 1) problems.push(`a row has id ${stats!.min_id}; nightwatch's ids are unsigned`);
  if (Number(stats!.status_len ?? 0) > STATUS_MAX) problems.push(`a row's status is longer than ${STATUS_MAX} characters`);
  if (problems.length > 0) {
    throw new Error(`the classic \`task\` table of \`${database}\` cannot be upgraded as it is: ${problems.join('; ')}`);
  }
  say(`database \`${database}\` holds a classic nightwatch \`task\` table (${stats!.rows} rows) and no _prisma_migrations: taking it over`);

  // One statement: MariaDB and MySQL apply an ALTER TABLE whole or not at all.
  const alter = [
    'DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci',
    'MODIFY `id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT',
    'MODIFY `name` VARCHAR(253) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL',
    'MODIFY `namespace` VARCHAR(253) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL',
    'MODIFY `info` LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL',
    "MODIFY `status` VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL DEFAULT 'Normal'",
    'MODIFY `user_id` VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL',
    'MODIFY `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)',
    'MODIFY `updated_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)',
    'ADD COLUMN `reason` TEXT NULL',
    'ADD COLUMN `attempt` INTEGER UNSIGNED NOT NULL DEFAULT 1',
    'ADD COLUMN `started_at` DATETIME(3) NULL',
    'ADD COLUMN `finished_at` DATETIME(3) NULL',
    'ADD INDEX `task_status_id_idx`(`status`, `id`)',
    ...(shape.uniqueIndex === 'task_name_namespace_key' ? [] : [`RENAME INDEX ${quoteId(shape.uniqueIndex)} TO \`task_name_namespace_key\``]),
  ];
  await conn.query(`ALTER TABLE \`task\`\n    ${alter.join(',\n    ')}`);
  const widened = ['id', 'name', 'namespace', 'info', 'status', 'user_id', 'created_at', 'updated_at']
    .map((c) => `${c} ${shape.columns.get(c)!.columnType} → ${BASELINE_TYPES[c]}`)
    .join(', ');
  say(`altered \`task\` to the shape of ${BASELINE_MIGRATION}: ${widened}`);
  say('added columns reason, attempt (1 for every row), started_at, finished_at; index task_status_id_idx (status, id)');
  if (shape.uniqueIndex !== 'task_name_namespace_key') say(`renamed unique index ${shape.uniqueIndex} (name, namespace) to task_name_namespace_key`);

  // The classic sync wrote `Unknown` for a Job that exists but is neither active nor finished (a pod
  // not created yet) and kept syncing it: to nightwatch that row is in progress, so reconcile adopts it.
  const unknown = await conn.query(`UPDATE \`task\` SET status = 'Pending' WHERE status = ?`, [CLASSIC_UNKNOWN]);
  if (Number(unknown.affectedRows) > 0) say(`${unknown.affectedRows} row(s) in the classic status ${CLASSIC_UNKNOWN} set to Pending (their Jobs are adopted)`);
  return steps;
}

function quoteId(name: string): string {
  return `\`${name.replaceAll('`', '``')}\``;
}
