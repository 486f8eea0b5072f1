// Lint rules that keep the tree one shape: typescript-eslint's recommended set, one import order, no import
// cycles, and the layering of docs/architecture.md (arrows point down: api → src → domain; projections → src
// → domain; only the composition root, src/herald.ts, sees api/ and projections/ and only through their
// index modules). Formatting belongs to prettier, so eslint-config-prettier switches off the style rules.
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';
import importX from 'eslint-plugin-import-x';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'sdk/dist/', 'node_modules/', '.herald/', 'api/demo/', 'sdk/amd/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    plugins: { 'import-x': importX },
    settings: { 'import-x/resolver-next': [createTypeScriptImportResolver({ project: './tsconfig.json' })] },
    rules: {
      'import-x/order': [
        'error',
        {
          groups: ['builtin', 'external', 'internal', 'parent', 'sibling', 'index'],
          'newlines-between': 'never',
          alphabetize: { order: 'asc', caseInsensitive: true },
        },
      ],
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      'import-x/no-restricted-paths': [
        'error',
        {
          zones: [
            {
              target: './domain',
              from: ['./src', './api', './projections'],
              message: 'domain/ is pure: it imports nothing outside domain/.',
            },
            { target: './projections', from: './api', message: 'Read models do not know the API.' },
            {
              target: './src',
              from: './api',
              except: ['./index.ts'],
              message: 'Only the composition root mounts the API, through api/index.ts.',
            },
            {
              target: './src',
              from: './projections',
              except: ['./index.ts'],
              message: 'Only the composition root builds the read models, through projections/index.ts.',
            },
          ],
        },
      ],
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
    },
  },
  {
    // A bus topic is declared once, in src/bus/topics.ts, with its payload type: no other production module mints one.
    files: ['src/**/*.ts', 'api/**/*.ts', 'projections/**/*.ts'],
    ignores: ['src/bus/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/bus/bus'],
              importNames: ['topic'],
              message: 'Declare the topic in src/bus/topics.ts and import it from there.',
            },
          ],
        },
      ],
    },
  },
  {
    // Text checks look for control characters on purpose.
    rules: { 'no-control-regex': 'off' },
  },
  {
    // chai's property assertions (`expect(x).to.be.true`) are expressions by design.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-unused-expressions': 'off' },
  },
  prettier,
);
