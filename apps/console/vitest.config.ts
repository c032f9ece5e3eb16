// The console's unit tests: its Vite settings, plus the settings every workspace's tests share
// (among them the JSON report `npm test` reads back; see vitest.shared.ts).
import { mergeConfig } from 'vitest/config';
import shared from '../../vitest.shared.ts';
import vite from './vite.config.ts';

export default mergeConfig(vite, shared);
