/** `npm run schema:emit`: writes schema.graphql from the code (run by `npm run build`). */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { printSdl } from './schema';

async function main(): Promise<void> {
  const file = path.resolve(__dirname, '..', '..', '..', 'schema.graphql');
  writeFileSync(file, await printSdl());
  console.log(`wrote ${path.relative(process.cwd(), file)}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
