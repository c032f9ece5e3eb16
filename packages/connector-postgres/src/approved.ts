/**
 * What the on-prem admin approves in the agent's local policy (`sources.postgres`): a database
 * server pinned by host, port and database name, and the queries that may run there, each pinned
 * by the SHA-256 of its text, with a typed rule for every named parameter. The control plane can
 * only name an approved query and supply parameter values; it can never send SQL.
 *
 * Named parameters appear in the approved text as `{name}`. COPY cannot take bind parameters, so
 * each placeholder is replaced by a fixed expression that reads a transaction-local setting,
 * `(current_setting('airlock.param_<name>')::<type>)`, and the value itself is bound to that
 * setting with `set_config($1, $2, true)` before the COPY. What reaches the server's parser is
 * therefore only approved text plus expressions built from the policy's own parameter names and
 * types; a value never becomes SQL text, escaped or not, so no value can change the statement.
 * (Quoting values into the text with `escapeLiteral` would also be sound after validation, but it
 * puts data into SQL text and leans on the quoting being right for every server setting; a
 * server-side prepared statement or view cannot be used, as COPY takes neither, and a view would
 * write to the database.) A placeholder stands where an expression goes, never inside quotes or a
 * comment: there it would only break the approved query, since what is put in comes from the
 * policy alone. Values are checked against their declared rule (zod) first, and the server's cast
 * checks them again. Pure: no I/O, no driver.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { absolutePath } from '@airlock/connector-api/definition';
import { formatIssues, PolicyViolationError, UserError } from '@airlock/errors';

/** A host name or IPv4 address, lowercase, so one server has one spelling in claims, scopes and policies. */
export const hostName = z
  .string()
  .regex(/^[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?$/, 'a lowercase host name or IPv4 address')
  .describe('The database server, e.g. erp-db.internal.');

export const port = z.number().int().min(1).max(65_535);

/** A database name as it appears in claims (`/<database>/<query>`): no slash, no glob character. */
export const databaseName = z
  .string()
  .regex(/^[A-Za-z0-9_][A-Za-z0-9_.$-]{0,62}$/, 'letters, digits, _ . $ -; 1 to 63')
  .describe('The database to connect to.');

export const queryName = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'lowercase letters, digits, dot, dash, underscore; 1 to 64');

export const parameterName = z.string().regex(/^[a-z][a-z0-9_]{0,31}$/, 'lowercase letters, digits and _, starting with a letter; 1 to 32');

/**
 * The PostgreSQL type each parameter type is cast to. Fixed here: the cast written into the query
 * comes from this table, never from the policy's text.
 */
const PG_TYPES = {
  text: 'text',
  integer: 'bigint',
  numeric: 'numeric',
  boolean: 'boolean',
  date: 'date',
  timestamptz: 'timestamptz',
} as const;
export type ParameterType = keyof typeof PG_TYPES;

export const queryParameter = z.strictObject({
  type: z.enum(Object.keys(PG_TYPES) as [ParameterType, ...ParameterType[]]).default('text'),
  /** text: a regular expression the whole value must match (anchored for you). */
  pattern: z
    .string()
    .min(1)
    .max(500)
    .refine((pattern) => {
      try {
        new RegExp(pattern, 'u');
        return true;
      } catch {
        return false;
      }
    }, 'not a valid regular expression')
    .optional(),
  /** text: the longest accepted value, in characters; default 256. */
  maxLength: z.number().int().min(1).max(4096).default(256),
  /** text: the only accepted values. */
  values: z.array(z.string().max(4096)).min(1).max(1000).optional(),
  /** integer, numeric: the smallest accepted value. */
  min: z.number().optional(),
  /** integer, numeric: the largest accepted value. */
  max: z.number().optional(),
});
export type QueryParameter = z.output<typeof queryParameter>;

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'lowercase hex SHA-256 of the query text');

export const approvedQuery = z
  .strictObject({
    name: queryName,
    /** The query: one SELECT, WITH or VALUES statement, with `{name}` where a parameter goes. */
    sql: z.string().min(1).max(1_000_000).optional(),
    /** Or a file holding it, read (and hashed) at each run. */
    file: absolutePath('A file holding the query text.').optional(),
    /** Lowercase hex SHA-256 of the text (the file's bytes, or `sql` as UTF-8); changed text is refused. */
    sha256: sha256Hex,
    params: z.record(parameterName, queryParameter).default({}),
    /** Cancel the query after this long, through `statement_timeout`; default 10 minutes. */
    statementTimeoutMs: z.number().int().min(100).max(24 * 3_600_000).default(600_000),
  })
  .refine((query) => (query.sql === undefined) !== (query.file === undefined), 'give exactly one of sql and file');
export type ApprovedQuery = z.output<typeof approvedQuery>;

/** One entry of `sources.postgres`: a pinned server and database, and the queries approved there. */
export const postgresServerPolicy = z.strictObject({
  host: hostName,
  port: port.default(5432),
  database: databaseName,
  /**
   * `verify-full` (default): TLS, the certificate checked against `caFile` (or the system's CAs)
   * and the host name. `disable`: no TLS, for a server on the same host or a trusted segment only.
   */
  tls: z.enum(['verify-full', 'disable']).default('verify-full'),
  /** PEM CA bundle for `verify-full`. */
  caFile: absolutePath('A PEM file with the CA certificates that sign the server certificate.').optional(),
  /** Give up connecting after this long; default 20 s. */
  connectTimeoutMs: z.number().int().min(100).max(600_000).default(20_000),
  queries: z.array(approvedQuery).min(1).max(1000),
});
export type PostgresServerPolicy = z.output<typeof postgresServerPolicy>;

/** A parameter value as an integration config carries it. */
export const parameterValue = z.union([z.string().max(4096), z.number(), z.boolean()]);
export type ParameterValue = z.output<typeof parameterValue>;

export function sha256Of(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex');
}

const DECIMAL = /^-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$/;
const INTEGER = /^-?\d{1,19}$/;

/** The zod schema one declared parameter's value must pass; its output is the canonical text bound to the setting. */
export function parameterSchema(rule: QueryParameter): z.ZodType<string, unknown> {
  const inRange = (n: number) => (rule.min === undefined || n >= rule.min) && (rule.max === undefined || n <= rule.max);
  const range = `between ${rule.min ?? '-∞'} and ${rule.max ?? '∞'}`;
  switch (rule.type) {
    case 'text': {
      const pattern = rule.pattern === undefined ? undefined : new RegExp(`^(?:${rule.pattern})$`, 'u');
      return z
        .string()
        .max(rule.maxLength)
        // PostgreSQL text cannot hold NUL; refusing it here gives a clear error instead of a driver one.
        .refine((value) => !value.includes('\u0000'), 'must not contain NUL')
        .refine((value) => pattern === undefined || pattern.test(value), 'does not match its declared pattern')
        .refine((value) => rule.values === undefined || rule.values.includes(value), 'is not one of the declared values');
    }
    case 'integer':
      return z
        .union([z.number().int(), z.string().regex(INTEGER, 'an integer')])
        .transform((value) => (typeof value === 'number' ? BigInt(value) : BigInt(value)))
        .refine((value) => value >= -(2n ** 63n) && value < 2n ** 63n, 'out of range for bigint')
        .refine((value) => inRange(Number(value)), `must be ${range}`)
        .transform((value) => value.toString());
    case 'numeric':
      return z
        .union([z.number().refine(Number.isFinite, 'a finite number'), z.string().max(100).regex(DECIMAL, 'a decimal number')])
        .refine((value) => inRange(Number(value)), `must be ${range}`)
        .transform((value) => String(value));
    case 'boolean':
      return z.union([z.boolean(), z.enum(['true', 'false'])]).transform((value) => String(value));
    case 'date':
      return z.iso.date();
    case 'timestamptz':
      return z.iso.datetime({ offset: true });
  }
}

/** `{name}` in approved text: the only placeholder syntax; `{` appears nowhere else in SQL outside literals and comments. */
const PLACEHOLDER = /\{([a-z][a-z0-9_]{0,31})\}/g;

/** The setting a parameter's value is bound to for one transaction. */
export function settingOf(name: string): string {
  return `airlock.param_${name}`;
}

/**
 * The approved text with each `{name}` replaced by the typed read of its setting, and any trailing
 * semicolon dropped so that it fits inside `COPY ( ... )`. Throws `UserError` when the text uses a
 * parameter the policy does not declare, or declares one it never uses: either is a policy mistake.
 */
export function rewriteQuery(query: Pick<ApprovedQuery, 'name' | 'params'>, text: string): string {
  const used = new Set<string>();
  const rewritten = text.replace(PLACEHOLDER, (_whole, name: string) => {
    const rule = query.params[name];
    if (rule === undefined) throw new UserError(`approved query ${query.name} uses {${name}}, which its params do not declare`);
    used.add(name);
    return `(current_setting('${settingOf(name)}')::${PG_TYPES[rule.type]})`;
  });
  const unused = Object.keys(query.params).filter((name) => !used.has(name));
  if (unused.length > 0) throw new UserError(`approved query ${query.name} declares parameters it never uses: ${unused.join(', ')}`);
  const body = rewritten.replace(/[\s;]+$/u, '');
  if (body.trim() === '') throw new UserError(`approved query ${query.name} is empty`);
  return body;
}

/**
 * The values an integration supplies, each checked against its declared rule and turned into the
 * canonical text to bind. Unknown and missing parameters are refused; a value never appears in an
 * error message, since parameters can be sensitive.
 */
export function checkParameters(query: Pick<ApprovedQuery, 'name' | 'params'>, values: Readonly<Record<string, ParameterValue>>): Map<string, string> {
  for (const name of Object.keys(values)) {
    if (!(name in query.params)) throw new UserError(`query ${query.name} has no parameter ${JSON.stringify(name)}`);
  }
  const checked = new Map<string, string>();
  const problems: string[] = [];
  for (const [name, rule] of Object.entries(query.params)) {
    const value = values[name];
    if (value === undefined) {
      problems.push(`${name}: missing`);
      continue;
    }
    const parsed = parameterSchema(rule).safeParse(value);
    if (parsed.success) checked.set(name, parsed.data);
    else problems.push(formatIssues(parsed.error.issues.map((issue) => ({ ...issue, path: [name] }))));
  }
  if (problems.length > 0) throw new UserError(`parameters of query ${query.name} are not valid: ${problems.join('; ')}`);
  return checked;
}

/** The approved text, read (for a file) and checked against its pinned hash. */
export async function approvedText(query: ApprovedQuery): Promise<string> {
  let bytes: Buffer;
  if (query.file !== undefined) {
    bytes = await readFile(query.file).catch((error: unknown) => {
      throw new UserError(`approved query ${query.name}: cannot read ${query.file}`, { cause: error });
    });
  } else bytes = Buffer.from(query.sql ?? '', 'utf8');
  const actual = sha256Of(bytes);
  if (actual !== query.sha256) {
    throw new PolicyViolationError(`approved query ${query.name}: its text changed (sha256 ${actual}, approved ${query.sha256})`);
  }
  return bytes.toString('utf8');
}
