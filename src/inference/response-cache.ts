/**
 * The response cache (issue #25, Triton's `response_cache`): answers of
 * models whose config.json opts in (`response_cache: { enable: true }`),
 * kept in process in an LRU bounded by bytes (RESPONSE_CACHE_MAX_BYTES).
 *
 * A key is a SHA-256 over the tenant, the model, the loaded session (a
 * reload or a new version is a new session, so an answer of the old weights
 * can never come back) and everything of the request that shapes the
 * answer: each input's name, datatype, shape, encoding and bytes, and the
 * requested outputs. The tenant is part of the key, so one tenant's inputs
 * never answer another's. Priority and timeout do not change an answer and
 * are not in the key; the request id is echoed from the new request.
 *
 * Only what validation would accept the same way is keyed: the cache is
 * consulted before validation (a hit is sized and billed before it runs),
 * and an entry is stored only after its request validated and ran, so an
 * identical request (same bytes, same encoding) would validate the same.
 * Inputs given as JSON numbers are keyed by their float64 bit patterns; a
 * JSON array holding anything but numbers is not cached.
 */
import { createHash, type Hash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { InferRequest, InferResponse, InferencePlan } from './inference.service';

/** Bytes counted for an entry beyond its output tensors (key, object headers, names). */
const ENTRY_OVERHEAD_BYTES = 256;

export interface ResponseCacheOptions {
  /** 0: nothing is cached. */
  maxBytes: number;
  /** Share of a request's compute units a hit is billed, 0..1. */
  billedFraction: number;
}

export class ResponseCacheMetrics {
  readonly hits: Counter<'model'>;
  readonly misses: Counter<'model'>;
  readonly evictions: Counter;
  readonly invalidations: Counter<'model'>;

  constructor(registry: Registry, cache: () => { bytes: number; entries: number }) {
    const registers = [registry];
    this.hits = new Counter({ name: 'modelgate_response_cache_hits_total', help: 'Admitted inference requests answered from the response cache', labelNames: ['model'], registers });
    this.misses = new Counter({ name: 'modelgate_response_cache_misses_total', help: 'Admitted cacheable inference requests not found in the response cache (they run)', labelNames: ['model'], registers });
    this.evictions = new Counter({ name: 'modelgate_response_cache_evictions_total', help: 'Response cache entries evicted to stay within RESPONSE_CACHE_MAX_BYTES', registers });
    this.invalidations = new Counter({ name: 'modelgate_response_cache_invalidations_total', help: 'Response cache entries dropped because their model was loaded, reloaded or unloaded', labelNames: ['model'], registers });
    new Gauge({
      name: 'modelgate_response_cache_bytes',
      help: 'Bytes held by the response cache (outputs plus a fixed overhead per entry)',
      registers,
      collect() {
        this.set(cache().bytes);
      },
    });
    new Gauge({
      name: 'modelgate_response_cache_entries',
      help: 'Answers held by the response cache',
      registers,
      collect() {
        this.set(cache().entries);
      },
    });
  }
}

interface Entry {
  model: string;
  response: InferResponse;
  size: number;
}

/** What a lookup found: the key to store the answer under on a miss, and the answer on a hit. */
export interface CacheProbe {
  key: string;
  hit: InferResponse | null;
}

export class ResponseCache {
  private readonly lru: LRUCache<string, Entry> | null;
  readonly metrics: ResponseCacheMetrics;

  constructor(
    private readonly options: ResponseCacheOptions,
    registry: Registry,
  ) {
    this.lru =
      options.maxBytes > 0
        ? new LRUCache<string, Entry>({
            maxSize: options.maxBytes,
            sizeCalculation: (entry) => entry.size,
            dispose: (_entry, _key, reason) => {
              if (reason === 'evict') this.metrics.evictions.inc();
            },
          })
        : null;
    this.metrics = new ResponseCacheMetrics(registry, () => ({ bytes: this.lru?.calculatedSize ?? 0, entries: this.lru?.size ?? 0 }));
  }

  /** Compute units a hit is billed: the fraction of the request's, rounded up to whole units as every bill is. */
  hitUnits(computeUnits: number): number {
    // The epsilon keeps float noise (8 × 0.25 as 2.0000000001) from rounding up a whole unit.
    return Math.max(0, Math.ceil(computeUnits * this.options.billedFraction - 1e-9));
  }

  /**
   * Looks the request up; null when it is not cacheable (the model did not
   * opt in, the cache is off, or the request holds something not keyed).
   */
  probe(tenantId: string, plan: InferencePlan, request: InferRequest): CacheProbe | null {
    if (!this.lru || !plan.config.responseCache || !plan.version.sessionKey) return null;
    const key = requestKey(tenantId, plan.version.sessionKey, request);
    if (key === null) return null;
    const entry = this.lru.get(key);
    return { key, hit: entry ? { ...entry.response, id: request.id ?? null, queueMs: 0, computeMs: 0 } : null };
  }

  /** Counts a probed request the limits admitted: served from the cache, or run. */
  admitted(model: string, hit: boolean): void {
    (hit ? this.metrics.hits : this.metrics.misses).inc({ model });
  }

  /** Stores a successful answer (its outputs copied: the caller's buffers are its own). */
  store(key: string, model: string, response: InferResponse): void {
    if (!this.lru) return;
    let size = ENTRY_OVERHEAD_BYTES + key.length;
    const outputs = response.outputs.map((o) => {
      size += o.bytes.length + o.name.length + o.shape.length * 8;
      return { name: o.name, datatype: o.datatype, shape: [...o.shape], bytes: Buffer.from(o.bytes) };
    });
    if (size > this.options.maxBytes) return;
    this.lru.set(key, { model, size, response: { ...response, id: null, outputs } });
  }

  /** Drops every entry of a model (its version was loaded, reloaded or unloaded). */
  invalidate(model: string): void {
    if (!this.lru) return;
    const doomed: string[] = [];
    for (const [key, entry] of this.lru.entries()) if (entry.model === model) doomed.push(key);
    for (const key of doomed) this.lru.delete(key);
    if (doomed.length > 0) this.metrics.invalidations.inc({ model }, doomed.length);
  }

  get bytes(): number {
    return this.lru?.calculatedSize ?? 0;
  }
}

function field(hash: Hash, text: string): void {
  // Length-prefixed, so no two different field sequences hash the same bytes.
  hash.update(`${text.length}:`);
  hash.update(text);
}

/** The key of one request, or null when it holds something the cache does not key. */
export function requestKey(tenantId: string, session: string, request: InferRequest): string | null {
  if (request.id != null && request.id.length > 256) return null; // refused by validation; must not hit
  const hash = createHash('sha256');
  field(hash, tenantId);
  field(hash, session);
  field(hash, String(request.inputs.length));
  for (const input of request.inputs) {
    field(hash, input.name);
    field(hash, input.datatype);
    field(hash, input.shape.join(','));
    if (input.strings != null) {
      // BYTES as JSON strings: each length-prefixed, so two lists never hash alike.
      if (input.data != null || input.dataBase64 != null || input.bytes != null) return null;
      field(hash, 't');
      field(hash, String(input.strings.length));
      for (const text of input.strings) {
        if (typeof text !== 'string') return null;
        // UTF-16 code units, so a lone surrogate (refused later) never keys like U+FFFD.
        hash.update(`${text.length}:`);
        hash.update(Buffer.from(text, 'utf16le'));
      }
    } else if (input.bytes != null) {
      if (input.data != null || input.dataBase64 != null) return null;
      field(hash, 'b');
      field(hash, String(input.bytes.length));
      hash.update(input.bytes);
    } else if (input.dataBase64 != null) {
      if (input.data != null) return null;
      field(hash, 's');
      field(hash, input.dataBase64);
    } else if (input.data != null) {
      const data = input.data;
      const numbers = new Float64Array(data.length);
      for (let i = 0; i < data.length; i += 1) {
        const v = data[i];
        if (typeof v !== 'number') return null;
        numbers[i] = v;
      }
      field(hash, 'n');
      field(hash, String(data.length));
      hash.update(new Uint8Array(numbers.buffer));
    } else {
      return null;
    }
  }
  const outputs = request.outputs;
  field(hash, outputs == null ? '*' : `${outputs.length}`);
  for (const name of outputs ?? []) field(hash, name);
  return hash.digest('base64');
}
