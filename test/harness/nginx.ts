/**
 * nginx (Debian's package) in the foreground as a test load balancer in
 * front of gateway replicas: round-robin, a new upstream connection per
 * request, and a refused connection retried on the next replica. Changing
 * the upstream set is a graceful reload (SIGHUP), as an endpoints update is
 * for a Kubernetes Service: in-flight proxied requests finish on old workers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../helpers/capture';
import { sleep } from './production-gateway';
import { until, WAIT_TIMEOUT_MS } from './until';

const NGINX = process.env['NGINX_BIN'] ?? '/usr/sbin/nginx';

/** The `http {}`-level site configuration for these upstream ports, listening on 127.0.0.1:listenPort. */
export type SiteConfig = (upstreamPorts: number[], listenPort: number) => string;

export class NginxBalancer {
  private child: ChildProcess | null = null;
  private out = '';

  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly site: SiteConfig | null,
  ) {}

  static async start(upstreamPorts: number[], options: { site?: SiteConfig } = {}): Promise<NginxBalancer> {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mg-nginx-'));
    const balancer = new NginxBalancer(dir, await freePort(), options.site ?? null);
    for (const sub of ['client', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(path.join(dir, sub));
    balancer.writeConfig(upstreamPorts);
    balancer.child = spawn(NGINX, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: ['ignore', 'pipe', 'pipe'] });
    balancer.child.stdout?.on('data', (d: Buffer) => (balancer.out += d.toString()));
    balancer.child.stderr?.on('data', (d: Buffer) => (balancer.out += d.toString()));
    await until(`nginx on ${balancer.url} to answer`, () => fetch(`${balancer.url}/healthz`), {
      timeoutMs: WAIT_TIMEOUT_MS,
      failIf: () => (balancer.child?.exitCode === null ? undefined : `nginx exited: ${balancer.out}`),
    });
    return balancer;
  }

  /** Replaces the upstream set with a graceful reload; resolves once new workers had time to take over. */
  async setUpstreams(upstreamPorts: number[]): Promise<void> {
    this.writeConfig(upstreamPorts);
    this.child?.kill('SIGHUP');
    await sleep(300);
  }

  private writeConfig(upstreamPorts: number[]): void {
    const dir = this.dir;
    if (this.site) {
      // As the nginx image does: the site file is included inside `http {}`; only process paths are this harness's.
      writeFileSync(path.join(dir, 'site.conf'), this.site(upstreamPorts, this.port));
      writeFileSync(
        path.join(dir, 'nginx.conf'),
        `worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/client;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  include ${dir}/site.conf;
}
`,
      );
      return;
    }
    writeFileSync(
      path.join(dir, 'nginx.conf'),
      `worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  # A reload closes idle client keep-alive connections, racing a client that reuses one
  # ("other side closed"): a property of nginx reloads, not of the gateways behind it.
  keepalive_timeout 0;
  client_body_temp_path ${dir}/client;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  client_max_body_size 32m;
  upstream gateways {
    ${upstreamPorts.map((p) => `server 127.0.0.1:${p} max_fails=0;`).join('\n    ')}
  }
  server {
    listen 127.0.0.1:${this.port};
    location / {
      proxy_pass http://gateways;
      proxy_next_upstream error timeout;
      proxy_next_upstream_tries 3;
      proxy_connect_timeout 2s;
      proxy_read_timeout 30s;
    }
  }
}
`,
    );
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGQUIT');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
