/** A production-build gateway on a fresh embedded data dir, its first-start admin key, and a few tenants for the client tests. */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ProductionGateway, REPO_ROOT } from '../harness';

export interface LiveGateway {
  gw: ProductionGateway;
  adminKey: string;
  /** A key limited to 1 request per minute. */
  limitedKey: string;
  tenants: string[];
}

export async function startLiveGateway(): Promise<LiveGateway> {
  const gw = await ProductionGateway.start({
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    LOG_PRETTY: 'false',
    MODEL_REPOSITORY: path.join(REPO_ROOT, 'models'),
    DATA_DIR: mkdtempSync(path.join(os.tmpdir(), 'mg-clients-')),
  });
  const adminKey = /^ {3}(mg_live_[0-9A-Za-z]{49})$/m.exec(gw.output)?.[1];
  if (!adminKey) throw new Error(`no first-start key printed:\n${gw.output}`);
  const auth = { authorization: `Bearer ${adminKey}` };
  const tenants = ['client-a', 'client-b', 'client-c'];
  for (const name of tenants) {
    const res = await gw.graphql('mutation($n: String!) { createTenant(input: { name: $n }) { id } }', { n: name }, auth);
    if (res.body?.errors) throw new Error(JSON.stringify(res.body.errors));
  }
  const limited = await gw.graphql<{ createApiKey: { plaintext: string } }>(
    'mutation { createApiKey(input: { tenant: "client-a", name: "limited", scopes: [INFERENCE], requestsPerMinute: 1 }) { plaintext } }',
    {},
    auth,
  );
  const limitedKey = limited.body?.data?.createApiKey.plaintext;
  if (!limitedKey) throw new Error(JSON.stringify(limited.body));
  return { gw, adminKey, limitedKey, tenants };
}
