// How both CLIs' bins start. A bin runs `<app>/dist/cli.js` (`npm run build`, see the agent's
// src/bundle.ts) when it is at least as new as every source it was built from, and its TypeScript
// sources through tsx otherwise: a stale bundle never runs. Plain JavaScript, so it needs no build.
import { readFileSync, statSync } from 'node:fs';

/** Whether the bundle `dist` is at least as new as every input listed in `inputsFile`. */
function compiledIsCurrent(dist, inputsFile) {
  try {
    const built = statSync(dist).mtimeMs;
    const inputs = JSON.parse(readFileSync(inputsFile, 'utf8'));
    return Array.isArray(inputs) && inputs.length > 0 && inputs.every((input) => statSync(input).mtimeMs <= built);
  } catch {
    return false;
  }
}

/**
 * Runs the CLI of the bin at `binUrl` (its `import.meta.url`): the bundle's `main` when current,
 * else `loadSources()` (the bin's own `import('../src/cli.ts')`) once tsx is registered.
 */
export async function launch(binUrl, loadSources) {
  const dist = new URL('../dist/cli.js', binUrl);
  let main;
  if (compiledIsCurrent(dist, new URL('../dist/inputs.json', binUrl))) {
    ({ main } = await import(dist.href));
  } else {
    const { register } = await import('tsx/esm/api');
    register();
    ({ main } = await loadSources());
  }
  await main(process.argv);
}
