#!/usr/bin/env node
/** `modelgate` (package.json bin): see program.ts. */
import { ConfigError } from '../config';
import { runCli } from './program';

// `modelgate keys list | head`: a reader that stops early is not an error worth a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
}

runCli(process.argv.slice(2), { out: (s) => process.stdout.write(`${s}\n`), err: (s) => process.stderr.write(`${s}\n`) })
  .then((code) => process.exit(code))
  .catch((error: unknown) => {
    process.stderr.write(`modelgate: ${error instanceof ConfigError ? error.message : String(error)}\n`);
    process.exit(error instanceof ConfigError ? 2 : 1);
  });
