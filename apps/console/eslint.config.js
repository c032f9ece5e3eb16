// The console runs in the browser: browser globals on top of the shared rules.
import shared from '../../eslint.config.js';

export default [
  ...shared,
  {
    files: ['src/**/*.{ts,tsx}'],
    languageOptions: {
      globals: { window: 'readonly', document: 'readonly', navigator: 'readonly', fetch: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', Blob: 'readonly', HTMLDialogElement: 'readonly', HTMLElement: 'readonly', HTMLAnchorElement: 'readonly' },
    },
  },
];
