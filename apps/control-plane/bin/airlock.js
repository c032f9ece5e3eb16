#!/usr/bin/env node
// Runs the compiled CLI (`npm run build`, see src/bundle.ts) when it is at least as new as every source
// it was built from, and the TypeScript sources through tsx otherwise: a stale bundle never runs.
import { readFileSync, statSync } from 'node:fs';

const dist = new URL('../dist/cli.js', import.meta.url);

function compiledIsCurrent() {
  try {
    const built = statSync(dist).mtimeMs;
    const inputs = JSON.parse(readFileSync(new URL('../dist/inputs.json', import.meta.url), 'utf8'));
    return Array.isArray(inputs) && inputs.length > 0 && inputs.every((input) => statSync(input).mtimeMs <= built);
  } catch {
    return false;
  }
}

let main;
if (compiledIsCurrent()) {
  ({ main } = await import(dist.href));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../src/cli.ts'));
}
await main(process.argv);
