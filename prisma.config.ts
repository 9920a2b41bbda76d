// Prisma CLI configuration (used by `prisma generate`; migrations are applied by
// src/db/migrate.ts through Prisma's WebAssembly schema engine, which works offline).
import { defineConfig } from 'prisma/config';

export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
});
