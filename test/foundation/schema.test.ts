import { readFileSync } from 'node:fs';
import path from 'node:path';
import { printSdl } from '../../src/server/graphql/schema';

describe('schema.graphql', () => {
  it('matches what the code emits (run `npm run build` and commit schema.graphql)', async () => {
    const committed = readFileSync(path.resolve(__dirname, '../../schema.graphql'), 'utf8');
    expect(await printSdl()).toBe(committed);
  });
});
