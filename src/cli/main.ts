#!/usr/bin/env node
/** `modelgate` (package.json bin): see program.ts. */
import { ConfigError } from '../config';
import { runCli } from './program';

runCli(process.argv.slice(2), { out: (s) => process.stdout.write(`${s}\n`), err: (s) => process.stderr.write(`${s}\n`) })
  .then((code) => process.exit(code))
  .catch((error: unknown) => {
    process.stderr.write(`modelgate: ${error instanceof ConfigError ? error.message : String(error)}\n`);
    process.exit(error instanceof ConfigError ? 2 : 1);
  });
