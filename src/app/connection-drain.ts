/**
 * Closing the listener without resetting requests already on their way.
 *
 * Node's `server.close()` also destroys every connection that has no request
 * in progress at that instant (closeIdleConnections): a connection accepted a
 * moment ago whose request has not been parsed yet, or a keep-alive
 * connection whose client is writing its next request, is reset, and the
 * client cannot tell whether its request ran. Here the listener is closed
 * but idle connections are held for a short window: a request that arrives on
 * one is answered (with `Connection: close`, set while shutting down), and
 * only connections still idle when the window ends are closed. The listener
 * itself is closed when its accept queue is empty, so no connection the
 * kernel already completed is reset.
 */
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { Server as NetServer, type Socket } from 'node:net';

/**
 * Connections on `port`'s listening socket that closing it would reset: those
 * the kernel completed and the process has not accepted yet, and handshakes
 * under way (Linux: /proc/net/tcp{,6}); null where that cannot be read.
 */
export function acceptQueueLength(port: number): number | null {
  const hexPort = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  let found: number | null = null;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'latin1');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const f = line.trim().split(/\s+/);
      // sl local_address rem_address st tx_queue:rx_queue …; st 0A is LISTEN (rx_queue: completed, not
      // accepted), 03 SYN_RECV (a handshake under way, which closing the listener would reset too).
      if (!f[1]?.endsWith(hexPort)) continue;
      if (f[3] === '0A') found = (found ?? 0) + parseInt(f[4]?.split(':')[1] ?? '0', 16);
      else if (f[3] === '03') found = (found ?? 0) + 1;
    }
  }
  return found;
}

/**
 * Closes the listening socket at a moment its accept queue is empty: closing
 * it with connections queued resets them (the client already sent its
 * request), while a connect after the close is refused (ECONNREFUSED: the
 * client knows nothing was sent). Between polls the event loop accepts what
 * is queued. Bounded: after `maxWaitMs` it closes anyway.
 */
async function closeListenerWhenQueueEmpty(server: Server, maxWaitMs: number): Promise<void> {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : null;
  const until = Date.now() + maxWaitMs;
  // Shrink the kernel's accept queue to its minimum (one connection) first: further handshakes are
  // not completed (the SYN is dropped, the client retries it later and then meets a closed port),
  // so clients that reconnect at once cannot keep the queue full. Node keeps the listening handle
  // private; listen() on a listening socket only changes its backlog.
  const handle = (server as unknown as { _handle?: { listen?: (backlog: number) => number } })._handle;
  if (port !== null && typeof handle?.listen === 'function') handle.listen(0);
  while (port !== null && Date.now() < until) {
    const queued = acceptQueueLength(port);
    if (queued === null || queued === 0) break;
    // setImmediate runs after the poll phase, where libuv accepts every queued connection.
    await new Promise((resolve) => setImmediate(resolve));
  }
  // net.Server's own close: http.Server's would also close idle connections, which drain.close holds.
  if (server.listening) NetServer.prototype.close.call(server);
}

export class ConnectionDrain {
  /** Requests in progress per open connection (0: idle). */
  private readonly active = new Map<Socket, number>();
  /** Connections that have had a request (the others were accepted and have not sent one yet). */
  private readonly served = new WeakSet<Socket>();

  constructor(server: Server) {
    server.on('connection', (socket: Socket) => {
      this.active.set(socket, 0);
      socket.once('close', () => this.active.delete(socket));
    });
    server.on('request', (request: { socket: Socket }, response: { once(event: 'close', fn: () => void): unknown }) => {
      const socket = request.socket;
      this.served.add(socket);
      this.active.set(socket, (this.active.get(socket) ?? 0) + 1);
      response.once('close', () => {
        const n = this.active.get(socket);
        if (n !== undefined) this.active.set(socket, Math.max(0, n - 1));
      });
    });
  }

  /** Open connections with no request in progress. */
  get idle(): number {
    let n = 0;
    for (const count of this.active.values()) if (count === 0) n += 1;
    return n;
  }

  /**
   * Closes `server`'s listener (via `close`, which resolves once every
   * connection ended) while idle connections are spared for `windowMs`;
   * then those still idle are closed, and from then on any that goes idle.
   */
  async close(server: Server, close: () => Promise<void>, windowMs: number, log?: { info(o: object, m: string): void }): Promise<void> {
    const original = server.closeIdleConnections.bind(server);
    server.closeIdleConnections = () => undefined;
    // Idle keep-alive connections go; one accepted but not yet used has a request on its way (or
    // none at all: then the drain timeout ends it).
    const reap = () => {
      for (const [socket, count] of this.active) if (count === 0 && this.served.has(socket)) socket.destroy();
    };
    let poll: NodeJS.Timeout | undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      await closeListenerWhenQueueEmpty(server, windowMs * 3);
      log?.info({ open: this.active.size, idle: this.idle }, 'listener closed');
      // The hold counts from the listener's close, not from the drain's start: while the listener
      // still accepts (its queue did not empty at once on a busy host) clients are still writing on
      // their connections, and reaping those resets requests already sent (5 at once in one run
      // where the close waited 3 s, issue #28 item 8).
      timer = setTimeout(() => {
        log?.info({ open: this.active.size, idle: this.idle }, 'closing idle connections after the hold');
        reap();
        // A connection whose last request finishes after the window would otherwise wait for keep-alive's timeout.
        poll = setInterval(reap, 100);
      }, windowMs);
      await close();
    } finally {
      clearTimeout(timer);
      clearInterval(poll);
      server.closeIdleConnections = original;
    }
  }
}
