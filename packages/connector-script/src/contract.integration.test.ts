/**
 * The conformance suite against an approved script that streams a data file to stdout. Its output
 * is generated, so there is no listed file to change under it and no connection to cut: those
 * cases are not registered for it.
 */
import { createHash } from 'node:crypto';
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { mockContext } from '@airlock/connector-api/testkit';
import { describeSourceContract, emptyDirectory, scratchDirectory, sortedEntries, writeContent } from '@airlock/testing/connector-contract';
import { approvedScript, scriptSource } from './index.ts';

describeSourceContract('script@1', async () => {
  const home = await scratchDirectory('contract-script');
  const work = path.join(home, 'work');
  await mkdir(work);
  const data = path.join(home, 'data.bin');
  const command = path.join(home, 'cat-data.sh');
  const text = '#!/bin/sh\nexec cat "$1"\n';
  await writeFile(command, text);
  await chmod(command, 0o755);
  const approved = approvedScript.parse({
    name: 'cat-data',
    command,
    args: [data],
    sha256: createHash('sha256').update(text).digest('hex'),
    cwd: work,
  });
  return {
    connector: scriptSource,
    config: { name: 'cat-data', outputName: 'data.out' },
    context: (signal) => mockContext({ policy: [approved], ...(signal ? { signal } : {}) }),
    put: (_name, content) => writeContent(data, content),
    entries: () => sortedEntries(work),
    clear: async () => {
      await emptyDirectory(work);
      await rm(data, { force: true });
    },
    [Symbol.asyncDispose]: () => rm(home, { recursive: true, force: true }),
  };
});
