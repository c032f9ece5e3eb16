/**
 * `npm run -s test:integrity -- [--json] [--reports DIR]`
 *
 * Runs every regression test of the integrity findings (tests titled `[integrity #N]`, in any
 * workspace), one vitest run per workspace with that workspace's own config (so its PostgreSQL,
 * sshd and gpg fixtures are set up as in `npm test`), and reads the verdicts back from vitest's
 * JSON reports. Vitest's own output and the per-finding list go to stderr; stdout ends with
 * `{"findings": 23, "fixed": N, "open": [...]}`. Exits 1 when a tagged test failed or a run broke.
 * With `--reports DIR` it reads the reports `npm test` wrote there instead (see vitest.shared.ts).
 */
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { findingsOf, summarize, TAG_PATTERN, verdicts } from '../src/integrity.ts';
import { runTaggedTests } from '../src/tagged-runs.ts';
import { setUpCli } from './cli.ts';

setUpCli();
const { values } = parseArgs({ options: { json: { type: 'boolean', default: false }, reports: { type: 'string' } } });
const root = fileURLToPath(new URL('../../', import.meta.url));

const { tests: reported, broken } = await runTaggedTests({ root, marker: '[integrity #', namePattern: TAG_PATTERN, label: 'integrity', reports: values.reports });
const tests = findingsOf(reported);

const found = verdicts(tests);
for (const verdict of found) {
  const counts = `${verdict.tests.filter((test) => test.status === 'passed').length}/${verdict.tests.length} passed`;
  process.stderr.write(`#${verdict.finding} ${verdict.fixed ? 'fixed' : 'OPEN '} ${counts}  ${verdict.title}\n`);
  for (const test of verdict.tests) process.stderr.write(`    ${test.status.padEnd(7)} ${test.name}\n`);
}
for (const line of broken) process.stderr.write(`integrity: ${line}\n`);
const summary = summarize(found);
process.stdout.write(`${values.json ? JSON.stringify(summary) : JSON.stringify(summary, null, 2)}\n`);
process.exitCode = broken.length > 0 || tests.some((test) => test.status === 'failed') ? 1 : 0;
