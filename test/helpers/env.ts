/** Connection settings made by test/setup/global-setup.ts for this run. */
function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run tests through jest (globalSetup sets it)`);
  return value;
}

export const testEnv = {
  get databaseUrl(): string {
    return required('TEST_DATABASE_URL');
  },
  get databaseName(): string {
    return required('TEST_DATABASE_NAME');
  },
  get redisUrl(): string {
    return required('TEST_REDIS_URL');
  },
  get redisPrefix(): string {
    return required('TEST_REDIS_PREFIX');
  },
  adminDatabaseUrl: process.env['TEST_ADMIN_DATABASE_URL'] ?? 'postgresql://postgres@127.0.0.1:5432/postgres',
};
