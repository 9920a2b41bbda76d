/** A webhook receiver the tests run: records every request, answers per route as the test says. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  path: string;
  headers: http.IncomingHttpHeaders;
  raw: string;
  body: { id: string; type: string; createdAt: string; tenantId: string; data: Record<string, unknown> };
  at: number;
}

/** ok: 200; fail: that status; hold: never answers (until released). */
export type Mode = { kind: 'ok' } | { kind: 'fail'; status: number } | { kind: 'hold' };

export class Receiver {
  readonly received: Received[] = [];
  private readonly modes = new Map<string, Mode>();
  private readonly held = new Set<http.ServerResponse>();
  private readonly waiters: (() => void)[] = [];
  private server: http.Server | null = null;

  constructor(private port = 0) {}

  async start(): Promise<void> {
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const path = req.url ?? '/';
        this.received.push({ path, headers: req.headers, raw, body: JSON.parse(raw) as Received['body'], at: Date.now() });
        for (const w of this.waiters.splice(0)) w();
        const mode = this.modes.get(path) ?? { kind: 'ok' };
        if (mode.kind === 'hold') {
          this.held.add(res);
          return;
        }
        res.writeHead(mode.kind === 'ok' ? 200 : mode.status).end('');
      });
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  url(path: string): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  get listeningPort(): number {
    return this.port;
  }

  mode(path: string, mode: Mode): void {
    this.modes.set(path, mode);
  }

  at(path: string): Received[] {
    return this.received.filter((r) => r.path === path);
  }

  /** Resolves once `predicate` holds over what arrived (checked on each arrival), or rejects after timeoutMs. */
  async until(predicate: () => boolean, timeoutMs = 15_000, what = 'deliveries'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`receiver: timed out waiting for ${what}; got ${JSON.stringify(this.received.map((r) => [r.path, r.body.type, r.body.id]))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async close(): Promise<void> {
    for (const res of this.held) res.destroy();
    this.held.clear();
    const server = this.server;
    this.server = null;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
