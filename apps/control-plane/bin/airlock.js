#!/usr/bin/env node
// The bundle while it is current, the sources through tsx otherwise (@airlock/cli-launcher).
import { launch } from '@airlock/cli-launcher';

await launch(import.meta.url, () => import('../src/cli.ts'));
