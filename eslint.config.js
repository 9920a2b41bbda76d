// Lint: typescript-eslint's recommended rules on src/, test/ and bench/;
// graphql-eslint's schema rules (recommended + Relay) on the emitted schema.graphql.
const tseslint = require('typescript-eslint');
const js = require('@eslint/js');
const graphql = require('@graphql-eslint/eslint-plugin');

module.exports = tseslint.config(
  // Generated code (Prisma, graphql-codegen) is checked by its drift tests, not linted.
  { ignores: ['dist/**', 'node_modules/**', 'src/db/generated/**', 'clients/typescript/src/generated/**', 'clients/typescript/dist/**', 'models/**', 'coverage/**', '**/*.js'] },
  {
    files: ['**/*.ts', '**/*.tsx', '**/*.mjs'],
    extends: [js.configs.recommended, ...tseslint.configs.recommended],
  },
  {
    // Benchmark scripts are plain ES modules run by Node.
    files: ['**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', Buffer: 'readonly', console: 'readonly', URL: 'readonly', fetch: 'readonly', setTimeout: 'readonly', performance: 'readonly' } },
  },
  {
    files: ['**/*.ts', '**/*.tsx', '**/*.mjs'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // The schema is emitted from the type-graphql sources; findings are fixed there.
    files: ['schema.graphql'],
    languageOptions: { parser: graphql.parser, parserOptions: { graphQLConfig: { schema: './schema.graphql' } } },
    plugins: { '@graphql-eslint': graphql },
    rules: {
      ...graphql.configs['flat/schema-recommended'].rules,
      ...graphql.configs['flat/schema-relay'].rules,
      // Value objects (results, timings, tensors, money, limit states) have no identity of their own:
      // only entity types (the Node implementations) carry an id. Connections and edges are Relay's shapes.
      '@graphql-eslint/strict-id-in-types': [
        'error',
        {
          acceptedIdNames: ['id'],
          acceptedIdTypes: ['ID'],
          exceptions: {
            suffixes: ['Connection', 'Edge', 'Result', 'Payload'],
            types: [
              'ClassPrediction', 'CreatedApiKey', 'CreatedWebhook', 'Health', 'ImageClassification', 'InferOutputTensor', 'InferTiming',
              'ApiKeyEffectiveLimits', 'Credits', 'EffectiveLimit', 'Invoice', 'InvoiceLine', 'LimitState', 'LimitStatus', 'Me', 'Model', 'ModelStats', 'ModelVersion', 'MoneyBudget',
              'Money', 'ModelCatalogVersion', 'MonthlyQuota', 'PageInfo', 'RotatedApiKey', 'SaliencyMap', 'TenantEffectiveLimits', 'TensorSpec', 'UsageSummaryRow',
              // Reports of a moment (issue #23 convergence): no identity of their own to refetch by.
              'FleetConvergence', 'ReplicaConvergence', 'ReplicaVersionState',
            ],
          },
        },
      ],
      // Tensors, labels, scopes and shapes are plain lists: only connections' edges lists must hold edges.
      '@graphql-eslint/relay-edge-types': ['error', { withEdgeSuffix: true, shouldImplementNode: true, listTypeCanWrapOnlyEdgeType: false }],
      // Keyset pagination runs newest first, forward only (first/after); there is no last/before.
      '@graphql-eslint/relay-arguments': ['error', { includeBoth: false }],
      '@graphql-eslint/require-description': [
        'error',
        {
          types: true,
          rootField: true,
          FieldDefinition: true,
          InputValueDefinition: true,
          EnumValueDefinition: true,
          DirectiveDefinition: true,
        },
      ],
    },
  },
  {
    // The TypeScript client's operations, validated against the schema as graphql-codegen reads them.
    files: ['clients/typescript/src/operations/*.graphql'],
    languageOptions: {
      parser: graphql.parser,
      parserOptions: { graphQLConfig: { schema: './schema.graphql', documents: './clients/typescript/src/operations/*.graphql' } },
    },
    plugins: { '@graphql-eslint': graphql },
    rules: { ...graphql.configs['flat/operations-recommended'].rules, '@graphql-eslint/require-description': ['error', { OperationDefinition: true }] },
  },
);
