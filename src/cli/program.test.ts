/** The command tree and the target rules, in process (the CLI against real targets: test/cli). */
import type { Command } from 'commander';
import { buildProgram } from './program';
import { redactUrl, resolveTarget } from './target';
import { UsageError } from './exit';
import { generateKey } from '../ids/key-format';

function leaves(command: Command, prefix = ''): { path: string; command: Command }[] {
  const path = `${prefix} ${command.name()}`.trim();
  if (command.commands.length === 0) return [{ path, command }];
  return command.commands.flatMap((c) => leaves(c, path));
}

describe('the modelgate command tree', () => {
  const program = buildProgram({ out: () => undefined, err: () => undefined }, {});
  const all = leaves(program);

  it('has the admin commands', () => {
    expect(all.map((l) => l.path).sort()).toEqual(
      [
        'admin bootstrap',
        'completion',
        'credits grant',
        'invoice',
        'keys create',
        'keys generate',
        'keys list',
        'keys revoke',
        'keys rotate',
        'keys show',
        'keys update',
        'models list',
        'models publish',
        'models rollback',
        'models shadow',
        'models traffic',
        'models unload',
        'prices list',
        'prices set',
        'tenants create',
        'tenants list',
        'tenants resume',
        'tenants suspend',
        'tenants update',
        'usage records',
        'usage summary',
        'webhooks create',
        'webhooks delete',
        'webhooks deliveries',
        'webhooks list',
        'webhooks redeliver',
        'webhooks reencrypt-secrets',
        'webhooks rotate-secret',
      ].map((p) => `modelgate ${p}`),
    );
  });

  it('describes every command and option, and offers --json on every command', () => {
    const described = [program, ...program.commands, ...all.map((l) => l.command)];
    for (const c of described) {
      expect([c.name(), c.description()]).toEqual([c.name(), expect.stringMatching(/\S{3}/)]);
      for (const o of c.options) expect([c.name(), o.flags, o.description]).toEqual([c.name(), o.flags, expect.stringMatching(/\S{3}/)]);
    }
    // `completion` prints a shell script, nothing JSON could carry better.
    for (const { path, command } of all.filter((l) => l.path !== 'modelgate completion')) expect([path, command.options.some((o) => o.long === '--json')]).toEqual([path, true]);
  });
});

describe('choosing the target', () => {
  const key = generateKey('live').plaintext;

  it('never takes two targets, from options or from the environment', () => {
    expect(() => resolveTarget({ url: 'http://gw:4000', databaseUrl: 'postgresql://db/x' }, {})).toThrow(UsageError);
    expect(() => resolveTarget({ url: 'http://gw:4000', dataDir: '/tmp/x' }, {})).toThrow(/name two targets/);
    expect(() => resolveTarget({ databaseUrl: 'postgresql://db/x', dataDir: '/tmp/x' }, {})).toThrow(/two databases/);
    expect(() => resolveTarget({}, { MODELGATE_URL: 'http://gw:4000', DATA_DIR: '/tmp/x' })).toThrow(/MODELGATE_URL \(a gateway\) and DATA_DIR \(a database\) are both set/);
    expect(() => resolveTarget({ adminKeyFile: '/tmp/k' }, { DATABASE_URL: 'postgresql://db/x' })).toThrow(/--admin-key-file is for a gateway/);
  });

  it('lets an option choose over a variable of the other kind', () => {
    expect(resolveTarget({ url: 'http://gw:4000' }, { DATABASE_URL: 'postgresql://db/x', MODELGATE_ADMIN_KEY: key })).toMatchObject({ kind: 'remote', endpoint: 'http://gw:4000/graphql' });
    expect(resolveTarget({ databaseUrl: 'postgresql://u:pw@db:5433/x' }, { MODELGATE_URL: 'http://gw:4000' })).toMatchObject({
      kind: 'direct',
      line: 'modelgate: database postgresql://u:***@db:5433/x (direct)',
    });
    // --data-dir is the embedded database even with DATABASE_URL set.
    expect(resolveTarget({ dataDir: '/tmp/mg-x' }, { DATABASE_URL: 'postgresql://db/x' })).toMatchObject({ kind: 'direct', line: 'modelgate: embedded data dir /tmp/mg-x (direct)' });
  });

  it('names a gateway without credentials and its key by its display prefix only', () => {
    const t = resolveTarget({}, { MODELGATE_URL: 'https://ops:secret@gw.example:8443/base/?x=1', MODELGATE_ADMIN_KEY: key });
    expect(t).toMatchObject({ kind: 'remote', endpoint: 'https://gw.example:8443/base/graphql' });
    expect(t.line).toBe(`modelgate: gateway https://gw.example:8443/base (remote, key ${key.slice(0, 16)}…)`);
    expect(resolveTarget({ url: 'http://gw:4000/graphql' }, {})).toMatchObject({ endpoint: 'http://gw:4000/graphql', line: 'modelgate: gateway http://gw:4000/graphql (remote, key none)' });
    expect(() => resolveTarget({ url: 'ftp://gw' }, {})).toThrow(/must start with http:\/\/ or https:\/\//);
    expect(redactUrl('postgresql://postgres:pw@h:5432/db')).toBe('postgresql://postgres:***@h:5432/db');
  });
});
