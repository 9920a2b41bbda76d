/** Shared checks for the hostile-input tests (issue #12): the error contract and internals. */
import net from 'node:net';
import { INTERNALS_PATTERN, PUBLIC_ERROR_CODES } from '../../src/errors';

export { INTERNALS_PATTERN, PUBLIC_ERROR_CODES };

export interface ErrorEntry {
  message: string;
  extensions?: Record<string, unknown>;
  path?: unknown[];
}

/** Every error carries a public code and the request id; nothing internal shows. Returns the codes. */
export function contractViolations(status: number, text: string, requestIdHeader: string | null): string[] {
  const problems: string[] = [];
  if (INTERNALS_PATTERN.test(text)) problems.push(`internals in body: ${text.match(INTERNALS_PATTERN)?.[0]}`);
  let body: { errors?: ErrorEntry[]; error?: unknown; code?: unknown; requestId?: unknown } | null = null;
  try {
    body = JSON.parse(text) as { errors?: ErrorEntry[] };
  } catch {
    if (status >= 400) problems.push(`status ${status} without a JSON body`);
    return problems;
  }
  // The Open Inference Protocol's shape (/v2): {error, code, requestId, …}, read as one error.
  if (body && !Array.isArray(body) && typeof body.error === 'string') {
    body = { errors: [{ message: body.error, extensions: { code: body.code, requestId: body.requestId } }] };
  }
  if (status >= 400 && !(Array.isArray(body?.errors) && body.errors.length > 0)) problems.push(`status ${status} without errors`);
  for (const e of body?.errors ?? []) {
    const code = e.extensions?.['code'];
    if (typeof code !== 'string' || !PUBLIC_ERROR_CODES.has(code)) problems.push(`undocumented code ${String(code)}`);
    const id = e.extensions?.['requestId'];
    if (typeof id !== 'string' || id.length === 0) problems.push('error without requestId');
    else if (requestIdHeader && id !== requestIdHeader) problems.push('requestId differs from x-request-id');
  }
  if (status >= 500 && status !== 503 && status !== 504) problems.push(`undocumented 5xx ${status}`);
  return problems;
}

export function codesOf(text: string): string[] {
  try {
    const body = JSON.parse(text) as { errors?: ErrorEntry[] };
    return (body.errors ?? []).map((e) => String(e.extensions?.['code']));
  } catch {
    return [];
  }
}

/** Sends raw bytes on a socket and returns what came back before the server closed it. */
export function rawHttp(port: number, payload: string | Buffer, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let out = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(out);
    }, timeoutMs);
    socket.on('data', (d) => (out += d.toString()));
    socket.on('error', (e) => {
      clearTimeout(timer);
      if (out) resolve(out);
      else reject(e);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
    socket.write(payload);
  });
}

/** Splits a raw HTTP/1.1 response into status, headers and body. */
export function parseRawResponse(raw: string): { status: number; headers: Record<string, string>; body: string } {
  const [head = '', ...rest] = raw.split('\r\n\r\n');
  const [statusLine = '', ...headerLines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const at = line.indexOf(':');
    if (at > 0) headers[line.slice(0, at).trim().toLowerCase()] = line.slice(at + 1).trim();
  }
  return { status: Number(statusLine.split(' ')[1]), headers, body: rest.join('\r\n\r\n') };
}

/** Reads one gauge from a Prometheus text scrape. */
export function metricValue(scrape: string, name: string): number | undefined {
  const line = scrape.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.slice(name.length + 1)) : undefined;
}
