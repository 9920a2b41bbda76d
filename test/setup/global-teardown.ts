import pg from 'pg';
import Redis from 'ioredis';

export default async function globalTeardown(): Promise<void> {
  const dbName = process.env['TEST_DATABASE_NAME'];
  const admin = new pg.Client({
    connectionString: process.env['TEST_ADMIN_DATABASE_URL'] ?? 'postgresql://postgres@127.0.0.1:5432/postgres',
  });
  await admin.connect();
  // Databases made by test helpers carry the run's name as a prefix.
  const { rows } = await admin.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datname LIKE $1', [`${dbName}%`]);
  for (const row of rows) await admin.query(`DROP DATABASE IF EXISTS "${row.datname}" WITH (FORCE)`);
  await admin.end();

  const prefix = process.env['TEST_REDIS_PREFIX'];
  if (prefix) {
    const redis = new Redis(process.env['TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379/0');
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');
    await redis.quit();
  }
}
