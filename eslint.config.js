// Lint rules for every workspace. Each package runs `eslint .` from its folder; this file is found upward.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/node_modules/**', '**/dist/**', '**/.turbo/**'] },
  js.configs.recommended,
  ...tseslint.configs.strict,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', URL: 'readonly' } },
    rules: {
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-duplicate-imports': ['error', { allowSeparateTypeImports: true }],
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-non-null-assertion': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['@airlock/*/src/*', '@airlock/*/src'], message: 'Import a package through its exports map.' }] },
      ],
      'no-restricted-syntax': [
        'error',
        {
          selector: "CallExpression[callee.property.name=/^(exec|execSync)$/][callee.object.name='child_process']",
          message: 'Never run a shell: use execFile/spawn with an argv array.',
        },
        {
          selector: "Property[key.name='shell'][value.value=true]",
          message: 'Never run a shell: pass an argv array.',
        },
      ],
    },
  },
  {
    files: ['**/src/**/*.ts'],
    ignores: ['**/config.ts', '**/*.test.ts', '**/testing/**'],
    rules: {
      'no-restricted-properties': ['error', { object: 'process', property: 'env', message: 'Read the environment only in config.ts.' }],
    },
  },
);
