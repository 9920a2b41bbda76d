/** A webhook receiver the tests run: records every request, answers per route as the test says. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { until, WAIT_TIMEOUT_MS } from '../harness/until';

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

  /** Resolves once `predicate` holds over what arrived; on timeout the error lists every delivery received. */
  async until(what: string, predicate: () => boolean, timeoutMs = WAIT_TIMEOUT_MS): Promise<void> {
    await until(`receiver: ${what}`, () => this.received.map((r) => [r.path, r.body.type, r.body.id]), { accept: () => predicate(), timeoutMs, everyMs: 20 });
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
