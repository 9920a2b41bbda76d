/**
 * A throw-away Redis Cluster of 3 primaries and 3 replicas on spare ports
 * (never the machine's Redis), for failover tests. A small
 * cluster-node-timeout makes a replica take over within seconds of its
 * primary's death.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import Redis from 'ioredis';
import { TestRedisServer } from './redis-server';
import { until } from '../harness/until';
import { freePort } from '../helpers/gateway';

const run = promisify(execFile);

/**
 * A cluster node on spare ports: its client port and its cluster bus port (by default the client
 * port + 10000, which nobody checked was free: a CI run lost a node to it). A port another process
 * takes between the pick and the bind is picked again (at most three tries).
 */
async function startNode(args: string[]): Promise<TestRedisServer> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await TestRedisServer.start([...args, '--cluster-port', String(await freePort())]);
    } catch (error) {
      if (attempt >= 3) throw error;
    }
  }
}

export class TestRedisCluster {
  private readonly killed = new Set<TestRedisServer>();
  private constructor(
    readonly nodes: TestRedisServer[],
    private readonly dir: string,
  ) {}

  static async start(nodeTimeoutMs = 1000): Promise<TestRedisCluster> {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mg-rcluster-'));
    const nodes: TestRedisServer[] = [];
    for (let i = 0; i < 6; i += 1) {
      const nodeDir = mkdtempSync(path.join(dir, `n${i}-`));
      nodes.push(
        await startNode([
          '--cluster-enabled', 'yes',
          '--cluster-config-file', path.join(nodeDir, 'nodes.conf'),
          '--cluster-node-timeout', String(nodeTimeoutMs),
          '--cluster-announce-ip', '127.0.0.1',
          '--dir', nodeDir,
        ]),
      );
    }
    const cluster = new TestRedisCluster(nodes, dir);
    await run('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '1', '--cluster-yes']);
    await cluster.waitHealthy();
    return cluster;
  }

  get seedUrl(): string {
    return `redis://127.0.0.1:${this.nodes[0]!.port}?cluster=true`;
  }

  /** Every live node says cluster_state:ok, 3 primaries serve, and each replica's link to its primary is up. */
  async waitHealthy(live: TestRedisServer[] = this.live): Promise<void> {
    await until(
      'the Redis Cluster to be healthy (state ok, 3 primaries, replicas in sync)',
      async () => {
        const states = await Promise.all(live.map((n) => this.info(n)));
        return states.every((s) => s.cluster.includes('cluster_state:ok')) &&
          states.filter((s) => s.replication.includes('role:master')).length === 3 &&
          states.filter((s) => s.replication.includes('role:slave')).every((s) => s.replication.includes('master_link_status:up'));
      },
      { accept: (ok) => ok, everyMs: 100 },
    );
  }

  /** The node that serves `key`'s slot as primary now. */
  async primaryFor(key: string): Promise<TestRedisServer> {
    const live = this.nodes.find((n) => !this.killed.has(n));
    const probe = new Redis(live!.port, '127.0.0.1');
    try {
      const slot = Number(await probe.call('CLUSTER', 'KEYSLOT', key));
      const slots = (await probe.call('CLUSTER', 'SLOTS')) as [number, number, [string, number, ...unknown[]], ...unknown[]][];
      const range = slots.find(([from, to]) => slot >= from && slot <= to);
      const port = range?.[2][1];
      const node = this.nodes.find((n) => n.port === port);
      if (!node) throw new Error(`no node serves slot ${slot}`);
      return node;
    } finally {
      probe.disconnect();
    }
  }

  /** `role` and `master_link_status` of one node. */
  private async info(node: TestRedisServer): Promise<{ cluster: string; replication: string }> {
    const probe = new Redis(node.port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    try {
      await probe.connect();
      return { cluster: String(await probe.call('CLUSTER', 'INFO')), replication: await probe.info('replication') };
    } catch {
      return { cluster: '', replication: '' };
    } finally {
      probe.disconnect();
    }
  }

  /** SIGKILL one node, as a crash. */
  async kill(node: TestRedisServer): Promise<void> {
    this.killed.add(node);
    await node.kill();
  }

  /** The nodes not killed. */
  get live(): TestRedisServer[] {
    return this.nodes.filter((n) => !this.killed.has(n));
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.kill()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
