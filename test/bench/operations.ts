/**
 * `npm run -s test:operations -- [--json] [--reports DIR]`
 *
 * Runs every test of running Airlock in an enterprise network, those titled `[operations:proxy]`,
 * `[operations:update]` or `[operations:metrics]` in any workspace, each workspace with its own
 * vitest config (see tagged-runs.ts). Vitest's output and the per-test list go to stderr; stdout
 * ends with `{"proxy_cases": n, "update_cases": n, "metrics_ok": true, "failed": 0}`. Exits 1 when
 * a tagged test failed, a run broke, the proxy or update tag has no passing test, or metrics_ok is false.
 * With `--reports DIR` it reads the reports `npm test` wrote there instead (see vitest.shared.ts).
 */
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { OPERATIONS_MARKER, OPERATIONS_PATTERN, operationsSummary, operationsTagsOf } from '../src/operations.ts';
import { runTaggedTests } from '../src/tagged-runs.ts';
import { setUpCli } from './cli.ts';

setUpCli();
const { values } = parseArgs({ options: { json: { type: 'boolean', default: false }, reports: { type: 'string' } } });
const root = fileURLToPath(new URL('../../', import.meta.url));

const { tests: reported, broken } = await runTaggedTests({ root, marker: OPERATIONS_MARKER, namePattern: OPERATIONS_PATTERN, label: 'operations', reports: values.reports });
const tests = reported.filter((test) => operationsTagsOf(test.name).length > 0);
for (const test of tests) process.stderr.write(`${test.status.padEnd(7)} ${test.name}\n`);
for (const line of broken) process.stderr.write(`operations: ${line}\n`);
const summary = operationsSummary(tests);
const empty = (['proxy', 'update'] as const).filter((tag) => summary[`${tag}_cases`] === 0);
for (const tag of empty) process.stderr.write(`operations: no passing [operations:${tag}] test\n`);
if (!summary.metrics_ok) process.stderr.write('operations: the [operations:metrics] tests did not all pass, or there were none\n');
process.stdout.write(`${values.json ? JSON.stringify(summary) : JSON.stringify(summary, null, 2)}\n`);
process.exitCode = broken.length > 0 || summary.failed > 0 || empty.length > 0 || !summary.metrics_ok ? 1 : 0;
