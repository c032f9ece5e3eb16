/**
 * `npm run -s test:identity -- [--json] [--reports DIR]`
 *
 * Runs every test of the enterprise identity features, those titled `[identity:oidc]`,
 * `[identity:oauth]` or `[identity:mfa]` in any workspace, each workspace with its own vitest config
 * (see tagged-runs.ts). Vitest's output and the per-test list go to stderr; stdout ends with
 * `{"oidc_cases": n, "oauth_cases": n, "mfa_cases": n, "failed": 0}`, counting the passing tests of
 * each tag. Exits 1 when a tagged test failed, a run broke, or a tag has no passing test.
 * With `--reports DIR` it reads the reports `npm test` wrote there instead (see vitest.shared.ts).
 */
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { IDENTITY_MARKER, IDENTITY_PATTERN, IDENTITY_TAGS, identitySummary, identityTagsOf } from '../src/identity.ts';
import { runTaggedTests } from '../src/tagged-runs.ts';
import { setUpCli } from './cli.ts';

setUpCli();
const { values } = parseArgs({ options: { json: { type: 'boolean', default: false }, reports: { type: 'string' } } });
const root = fileURLToPath(new URL('../../', import.meta.url));

const { tests: reported, broken } = await runTaggedTests({ root, marker: IDENTITY_MARKER, namePattern: IDENTITY_PATTERN, label: 'identity', reports: values.reports });
const tests = reported.filter((test) => identityTagsOf(test.name).length > 0);
for (const test of tests) process.stderr.write(`${test.status.padEnd(7)} ${test.name}\n`);
for (const line of broken) process.stderr.write(`identity: ${line}\n`);
const summary = identitySummary(tests);
const empty = IDENTITY_TAGS.filter((tag) => summary[`${tag}_cases`] === 0);
for (const tag of empty) process.stderr.write(`identity: no passing [identity:${tag}] test\n`);
process.stdout.write(`${values.json ? JSON.stringify(summary) : JSON.stringify(summary, null, 2)}\n`);
process.exitCode = broken.length > 0 || summary.failed > 0 || empty.length > 0 ? 1 : 0;
