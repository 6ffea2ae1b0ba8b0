import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'replicas/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  // Layers, one direction (ARCHITECTURE.md): commands -> cli -> storage -> p2p. Protocols declare
  // the interfaces storage implements, so p2p imports nothing above it, not even a type.
  layer(
    'src/p2p/**/*.ts',
    ['storage', 'cli', 'commands', 'demo'],
    'protocols run over an injected context and declare the storage interfaces they need',
  ),
  layer(
    'src/storage/**/*.ts',
    ['cli', 'commands', 'demo'],
    'storage implements what p2p declares; it knows nothing of the CLI',
  ),
  layer('src/cli/**/*.ts', ['commands'], 'commands are thin and built on src/cli, not the other way round'),
);

/** Forbids files under `files` to import from the sibling source folders in `above`. */
function layer(files, above, why) {
  return {
    files: [files],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        { patterns: [{ regex: `(^|/)(${above.join('|')})/`, message: `layers: ${why}.` }] },
      ],
    },
  };
}
