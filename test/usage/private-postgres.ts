/**
 * A throwaway PostgreSQL server on a spare port, for tests that must stop and
 * start the database (never the machine's own). Runs as user postgres.
 */
import { execFile } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './helpers';

const run = promisify(execFile);
const BIN = process.env['PG_BIN_DIR'] ?? '/usr/lib/postgresql/15/bin';

export class PrivatePostgres {
  readonly root = mkdtempSync(path.join(os.tmpdir(), 'mg-private-pg-'));
  readonly data = path.join(this.root, 'data');
  port = 0;
  running = false;

  get url(): string {
    return `postgresql://postgres@127.0.0.1:${this.port}/postgres`;
  }

  private async pg(cmd: string, args: string[], timeoutMs = 60_000): Promise<string> {
    const { stdout, stderr } = await run('runuser', ['-u', 'postgres', '--', path.join(BIN, cmd), ...args], { timeout: timeoutMs });
    return stdout + stderr;
  }

  async init(): Promise<void> {
    const pw = await run('id', ['-u', 'postgres']);
    const gid = await run('id', ['-g', 'postgres']);
    chownSync(this.root, Number(pw.stdout.trim()), Number(gid.stdout.trim()));
    this.port = await freePort();
    await this.pg('initdb', ['-D', this.data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
  }

  /** `maxConnections`: a small value lets a test exhaust the server's connection slots ("too many clients"). */
  async start(options: { maxConnections?: number } = {}): Promise<void> {
    const opts = `-p ${this.port} -k ${this.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=${options.maxConnections ?? 30}`;
    await this.pg('pg_ctl', ['-D', this.data, '-o', opts, '-l', path.join(this.root, 'log'), '-w', '-t', '30', 'start']);
    this.running = true;
  }

  /** `immediate` is a crash-like stop: connections are cut without a clean goodbye. */
  async stop(mode: 'fast' | 'immediate' = 'immediate'): Promise<void> {
    if (!this.running) return;
    await this.pg('pg_ctl', ['-D', this.data, '-m', mode, '-w', '-t', '30', 'stop']);
    this.running = false;
  }

  async destroy(): Promise<void> {
    try {
      await this.stop('immediate');
    } catch {
      // Already gone; removing the directory is what matters.
    }
    rmSync(this.root, { recursive: true, force: true });
  }
}
