/**
 * Models as a fleet-wide service (issue #23). The catalog in PostgreSQL says,
 * per model version, whether the fleet should serve it, with which config and
 * which weights (a digest in the weight store; none: the seed's own files in
 * MODEL_REPOSITORY). A change is committed with its audit event and a
 * NOTIFY on MODEL_CATALOG_CHANNEL in one transaction; every replica then
 * reconciles: fetches weights into its local cache (digest verified), loads
 * (in the worker pool, beside a serving version), flips. A periodic reconcile
 * (MODEL_RECONCILE_INTERVAL_MS) and one after every (re)connected LISTEN
 * catch missed notifications and replicas that were down. The call that made
 * a change answers once its own replica has applied it.
 *
 * Uploads are validated before they are committed: size bound while
 * streaming, then a child process (ModelInspector) checks the ONNX statically
 * and opens it with onnxruntime, bounded in time and memory, and the config
 * is checked against the graph; a failure answers MODEL_INVALID with a reason
 * and commits nothing, so the serving version is untouched.
 *
 * Convergence is reported through Postgres, not Redis: each replica upserts a
 * ModelReplica row (its catalog generation, each version's state, an
 * expiry three heartbeats ahead) after every reconcile and on a heartbeat.
 * Postgres because it is the one store every deployment has (Redis is
 * optional, and embedded mode has none), the generation it reports is the
 * catalog's own, comparable in one query, and the row's expiry is read on
 * the database's clock (no skew between replicas). `wait: FLEET` polls
 * those rows until every live replica reached the change's generation.
 */
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Database } from '../db/database';
import { Prisma } from '../db/generated/client';
import { PgChannelListener, notifyChannel } from '../db/pg-channel';
import type { Logger } from '../log/logger';
import { auditActor, type Actor } from '../auth/actor';
import { assertModelManageable, modelOwner } from '../auth/scopes';
import { ModelInspector } from './model-inspector';
import { BadInputError, ModelQuotaExceededError, ModelTooLargeError, ModelUnavailableError, NotFoundError } from '../errors';
import { MODEL_NAME, WARMUP_FILE_NAME, modelConfigSchema, type ModelConfig } from './model-config';
import { emptyShadowStats, type ModelRegistry, type ModelStatus, type ShadowStats, type VersionOrigin, type WarmupFileReader } from './registry';
import { bytesSource, type WeightStore } from './weight-store';
import type { WeightCache } from './weight-cache';
import { parseLoadConfig } from './triton-config';

export const MODEL_CATALOG_CHANNEL = 'modelgate_model_catalog';
/** Serialises catalog writers so generations are handed out in commit order. */
const CATALOG_LOCK_KEY = 23_0023;
/** How many reconciles try a change that fails on this replica before it waits for the next change. */
const MAX_APPLY_ATTEMPTS = 5;
/** How often `wait: FLEET` re-reads the replicas' reports. */
const FLEET_POLL_MS = 100;
/** Rows of replicas gone this long are deleted (kept a while so an operator can see what went away). */
const GONE_REPLICA_KEEP_MS = 60 * 60 * 1000;

export type DesiredState = 'LOADED' | 'UNLOADED';

interface CatalogRow {
  model: string;
  version: number;
  ownerTenantId: string | null;
  config: unknown;
  desiredState: DesiredState;
  digest: string | null;
  trafficPercent: number | null;
  shadowPercent: number | null;
  generation: bigint;
  loadGeneration: bigint;
}

/** A version's serving state as a snapshot keeps it (null: the version had no catalog row). */
interface SnapshotRow {
  desiredState: DesiredState;
  config: unknown;
  digest: string | null;
  trafficPercent: number | null;
}

/** Snapshots kept per model (rollbackModel restores the newest). */
const SNAPSHOTS_KEPT = 20;

/** One version as `modelVersions` shows it: the catalog's wish and this replica's state. */
export interface FleetVersionView {
  model: string;
  version: number;
  source: VersionOrigin;
  desiredState: DesiredState;
  digest: string | null;
  /** The catalog generation of the version's last change; null: never changed through the catalog. */
  generation: number | null;
  /** This replica's state of the version (UNLOADED when it holds none). */
  replicaStatus: ModelStatus;
  replicaReason: string | null;
  /** The generation this replica last applied for the version (null: none). */
  appliedGeneration: number | null;
  /** Share of versionless requests routed here; null when the model has no split. */
  trafficPercent: number | null;
  /** Share of served requests also run on this version as a shadow; null: not the shadow. */
  shadowPercent: number | null;
  /** This replica's serving session's warm-up: ms (slowest worker) and runs; null before one loaded. */
  warmupMs: number | null;
  warmupRuns: number | null;
  /** This replica's shadow figures for this version (since the shadow was set); zeros when it never ran as one. */
  shadow: ShadowStats;
  /** Every live replica's state of the version, from its last report. */
  replicas: ReplicaVersionView[];
}

/** One version's state on one replica, as that replica last reported it. */
export interface ReplicaVersionView {
  replica: string;
  host: string;
  pid: number;
  /** The replica's catalog generation. */
  generation: number;
  status: ModelStatus;
  reason: string | null;
  appliedGeneration: number | null;
  /** Behind the version's catalog generation. */
  lagging: boolean;
}

/** One version in a replica's report. */
interface ReportedVersion {
  model: string;
  version: number;
  status: ModelStatus;
  reason: string | null;
  appliedGeneration: number | null;
}

interface ReplicaRow {
  id: string;
  host: string;
  pid: number;
  generation: bigint;
  versions: unknown;
  heartbeatAt: Date;
}

/** Where the fleet stands on one change: which live replicas reached its generation, and what failed. */
export interface FleetConvergence {
  generation: number;
  /** Every live replica reached the generation and applied the model's change without failure. */
  converged: boolean;
  waitedMs: number;
  replicas: {
    replica: string;
    host: string;
    pid: number;
    generation: number;
    lagging: boolean;
    /** The model's versions this replica could not apply, with why. */
    failures: string[];
  }[];
}

export type ChangeWait = 'REPLICA' | 'FLEET';

export interface FleetOptions {
  uploadMaxBytes: number;
  reconcileIntervalMs: number;
  /** How many models one tenant's private namespace may hold desired LOADED (MODEL_TENANT_MAX_MODELS). */
  tenantMaxModels: number;
  /** How many bytes of weights one tenant's LOADED private versions may hold (MODEL_TENANT_MAX_BYTES). */
  tenantMaxBytes: number;
  /** Postgres URL to LISTEN on; undefined in embedded mode (the periodic reconcile alone). */
  listenUrl: string | undefined;
  validateTimeoutMs: number;
  validateMaxMemoryBytes: number;
  /** How often this replica reports to ModelReplica. */
  heartbeatMs: number;
  /** Unreferenced weights, unfinished uploads and cache files older than this are deleted. */
  blobGcGraceMs: number;
}

/** A change to one version: its desired state, and new config / weights where given. */
interface VersionChange {
  version: number;
  desiredState: DesiredState;
  config?: ModelConfig | null;
  digest?: string | null;
  trafficPercent?: number | null;
  shadowPercent?: number | null;
}

const FILE_PARAMETER = /^file:([1-9]\d{0,8})\/model\.onnx$/;
const WARMUP_FILE_PARAMETER = /^file:warmup\/(.+)$/;

/**
 * What a Triton load's `file:` parameter names (REST and gRPC alike): a
 * version's weights (`file:<v>/model.onnx`) or a warm-up sample in the
 * model's `warmup/` folder (`file:warmup/<name>`, Triton's input_data_file);
 * BAD_INPUT for any other path.
 */
export function loadFileTarget(parameter: string): { version: number } | { warmupFile: string } {
  const weights = FILE_PARAMETER.exec(parameter);
  if (weights) return { version: Number(weights[1]) };
  const warmup = WARMUP_FILE_PARAMETER.exec(parameter);
  if (warmup && WARMUP_FILE_NAME.test(warmup[1]!)) return { warmupFile: warmup[1]! };
  throw new BadInputError(`${parameter}: only file:<version>/model.onnx and file:warmup/<name> are accepted`, `parameters.${parameter}`);
}

export interface TritonLoadParameters {
  config?: unknown;
  /** `file:<version>/model.onnx` → bytes. */
  files: Map<number, Uint8Array>;
  /** `file:warmup/<name>` → bytes: model_warmup input_data_file samples, stored with every version the load sets. */
  warmupFiles: Map<string, Uint8Array>;
}

/** The input_data_file names a config's model_warmup reads. */
function warmupFileNames(config: ModelConfig): Set<string> {
  return new Set((config.model_warmup ?? []).flatMap((sample) => Object.values(sample.inputs).map((input) => input.input_data_file).filter((f): f is string => f !== undefined)));
}

/**
 * The config with its warm-up files named (warmup_files): the ones this load
 * stored, and, for a config-only load, those the version was published with
 * where the new config still names them.
 */
function withWarmupFiles(config: ModelConfig, uploaded: Record<string, string>, previous: ModelConfig | null): ModelConfig {
  const named = warmupFileNames(config);
  const files: Record<string, string> = {};
  for (const [fileName, digest] of Object.entries(previous?.warmup_files ?? {})) if (named.has(fileName)) files[fileName] = digest;
  Object.assign(files, uploaded);
  const { warmup_files: _given, ...rest } = config;
  return Object.keys(files).length > 0 ? { ...rest, warmup_files: files } : rest;
}

function key(model: string, version: number): string {
  return `${model}/${version}`;
}

export class ModelFleet {
  /** "model/version" → the generation this replica applied. */
  private readonly applied = new Map<string, bigint>();
  /** "model/version" → the loadGeneration whose config and weights this replica serves. */
  private readonly loadedAt = new Map<string, bigint>();
  private readonly failures = new Map<string, string>();
  /** "model/version" → failed tries of the version's current generation. */
  private readonly attempts = new Map<string, { generation: bigint; count: number }>();
  private running: Promise<void> | null = null;
  private queued: Promise<void> | null = null;
  private listener: PgChannelListener | null = null;
  private timer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private gcTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly inspector: ModelInspector;
  /** This process's id in ModelReplica (each GATEWAY_PROCESSES worker is a replica of its own). */
  readonly replicaId = randomUUID();
  private readonly startedAt = new Date();
  /** The catalog's highest generation at the last reconcile. */
  private catalogGeneration = 0n;
  /** Live replicas as last read (the heartbeat), for /readyz, which cannot wait on the database. */
  private fleetSnapshot: { replica: string; generation: number }[] = [];
  /** The highest catalog generation this replica has reconciled (applied, or tried: see modelVersions for failures). */
  generation = 0n;
  firstReconcileDone = false;
  lastError: string | null = null;

  constructor(
    private readonly db: Database,
    private readonly registry: ModelRegistry,
    private readonly store: WeightStore,
    private readonly cache: WeightCache,
    private readonly options: FleetOptions,
    private readonly log: Logger,
  ) {
    this.inspector = new ModelInspector({ timeoutMs: options.validateTimeoutMs, maxMemoryBytes: options.validateMaxMemoryBytes });
  }

  get listening(): boolean {
    return this.listener?.up ?? false;
  }

  /** Starts listening and reconciling; the first reconcile runs once the database is up. */
  start(): void {
    if (this.options.listenUrl) {
      this.listener = new PgChannelListener(this.options.listenUrl, MODEL_CATALOG_CHANNEL, this.log, {
        message: () => void this.reconcile(),
        // A (re)connected listener may have missed notifications: reconcile, once the database is up
        // (at start the listener can connect first; initialReconcile reads the catalog once it is).
        state: (up) => {
          if (up && this.db.state === 'up') void this.reconcile();
        },
      });
      this.listener.start();
    }
    this.timer = setInterval(() => void this.reconcile(), this.options.reconcileIntervalMs);
    this.timer.unref();
    // Until the database is up there is nowhere to report (the first reconcile reports at once after).
    this.heartbeatTimer = setInterval(() => {
      if (this.db.state === 'up') void this.report();
    }, this.options.heartbeatMs);
    this.heartbeatTimer.unref();
    // GC needs no heartbeat's pace: a quarter of the grace period (at least a heartbeat, at most a minute).
    this.gcTimer = setInterval(() => {
      if (this.db.state === 'up') void this.collectGarbage();
    }, Math.max(this.options.heartbeatMs, Math.min(Math.floor(this.options.blobGcGraceMs / 4), 60_000)));
    this.gcTimer.unref();
  }

  /** The first reconcile, after the seed has loaded: a fresh replica converges before it reports ready. */
  async initialReconcile(): Promise<void> {
    // Not ready before the catalog was read once: a replica must not serve what the fleet unloaded.
    for (;;) {
      await this.db.whenReady();
      await this.reconcile();
      if (this.lastError === null || this.closed) break;
      await new Promise((resolve) => setTimeout(resolve, 250).unref());
    }
    this.firstReconcileDone = true;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    if (this.gcTimer) clearInterval(this.gcTimer);
    this.inspector.close();
    await this.listener?.close();
    // Gone on purpose: nobody should wait for this replica any more (best effort: with the database down the row expires).
    try {
      await this.db.prisma.modelReplica.deleteMany({ where: { id: this.replicaId } });
    } catch {
      // expires by itself
    }
  }

  /** What /readyz shows of the catalog (no model names: /readyz takes no key, and private names must not leak). */
  readinessDetail(): Record<string, unknown> {
    const states: Record<string, number> = {};
    for (const model of this.registry.list()) for (const v of model.versions.values()) states[v.status] = (states[v.status] ?? 0) + 1;
    return {
      replica: this.replicaId,
      generation: Number(this.generation),
      catalogGeneration: Number(this.catalogGeneration),
      versions: states,
      failedChanges: this.failures.size,
      listening: this.listening,
      replicas: this.fleetSnapshot,
      ...(this.lastError ? { error: this.lastError } : {}),
    };
  }

  /** Every version this replica holds or was asked to hold, with its state. */
  private reportedVersions(): ReportedVersion[] {
    const out = new Map<string, ReportedVersion>();
    for (const model of this.registry.list()) {
      for (const v of model.versions.values()) {
        const applied = this.applied.get(key(model.name, v.version));
        out.set(key(model.name, v.version), { model: model.name, version: v.version, status: v.status, reason: v.reason, appliedGeneration: applied === undefined ? null : Number(applied) });
      }
    }
    for (const [k, reason] of this.failures) {
      const slash = k.lastIndexOf('/');
      const entry = out.get(k) ?? { model: k.slice(0, slash), version: Number(k.slice(slash + 1)), status: 'UNLOADED' as const, reason: null, appliedGeneration: null };
      entry.reason = reason;
      out.set(k, entry);
    }
    return [...out.values()];
  }

  /** Upserts this replica's report (on the database's clock) and refreshes the snapshot /readyz shows. */
  async report(): Promise<void> {
    if (this.closed) return;
    try {
      const ttlMs = this.options.heartbeatMs * 3;
      await this.db.prisma.$executeRawUnsafe(
        `INSERT INTO "ModelReplica" ("id", "host", "pid", "startedAt", "heartbeatAt", "expiresAt", "generation", "versions")
         VALUES ($1::uuid, $2, $3, $4, now(), now() + ($5::int * interval '1 millisecond'), $6, $7::jsonb)
         ON CONFLICT ("id") DO UPDATE SET "heartbeatAt" = now(), "expiresAt" = EXCLUDED."expiresAt", "generation" = EXCLUDED."generation", "versions" = EXCLUDED."versions"`,
        this.replicaId,
        hostname(),
        process.pid,
        this.startedAt,
        ttlMs,
        this.generation,
        JSON.stringify(this.reportedVersions()),
      );
      this.fleetSnapshot = (await this.liveReplicas()).map((r) => ({ replica: r.id, generation: Number(r.generation) }));
    } catch (error) {
      this.log.warn({ err: error instanceof Error ? error.message : String(error) }, 'could not report this replica\'s catalog state');
    }
  }

  private async liveReplicas(): Promise<ReplicaRow[]> {
    return this.db.prisma.$queryRawUnsafe<ReplicaRow[]>(
      'SELECT "id"::text AS "id", "host", "pid", "generation", "versions", "heartbeatAt" FROM "ModelReplica" WHERE "expiresAt" > now() ORDER BY "startedAt", "id"',
    );
  }

  /** Every live replica's reported state of each version ("model/version" → states), for the repository index. */
  async replicaStates(): Promise<Map<string, ReplicaVersionView[]>> {
    const reports = await this.liveReplicas();
    const rows = (await this.db.prisma.modelCatalogVersion.findMany({ select: { model: true, version: true, generation: true } })) as { model: string; version: number; generation: bigint }[];
    const generations = new Map(rows.map((r) => [key(r.model, r.version), Number(r.generation)]));
    const keys = new Set<string>(generations.keys());
    for (const r of reports) for (const v of Array.isArray(r.versions) ? (r.versions as ReportedVersion[]) : []) keys.add(key(v.model, v.version));
    const out = new Map<string, ReplicaVersionView[]>();
    for (const k of keys) {
      const slash = k.lastIndexOf('/');
      out.set(k, reports.map((r) => replicaView(r, k.slice(0, slash), Number(k.slice(slash + 1)), generations.get(k) ?? null)));
    }
    return out;
  }

  /**
   * Waits until every live replica reached `generation` (or `timeoutMs`
   * passed) and says which lag and which failed the model's change. A
   * replica that stops reporting drops out once its row expires.
   */
  async waitForFleet(model: string, generation: bigint, timeoutMs: number): Promise<FleetConvergence> {
    const started = Date.now();
    for (;;) {
      const rows = await this.liveReplicas();
      const replicas = rows.map((r) => {
        const versions = Array.isArray(r.versions) ? (r.versions as ReportedVersion[]) : [];
        const failures = versions.filter((v) => v.model === model && v.reason !== null && (v.status === 'FAILED' || (v.appliedGeneration ?? 0) < Number(generation))).map((v) => `version ${v.version}: ${v.reason}`);
        return { replica: r.id, host: r.host, pid: r.pid, generation: Number(r.generation), lagging: BigInt(r.generation) < generation, failures };
      });
      const reached = replicas.every((r) => !r.lagging);
      const converged = reached && replicas.every((r) => r.failures.length === 0);
      const waitedMs = Date.now() - started;
      if (reached || waitedMs >= timeoutMs || this.closed) return { generation: Number(generation), converged, waitedMs, replicas };
      await new Promise((resolve) => setTimeout(resolve, Math.min(FLEET_POLL_MS, Math.max(1, timeoutMs - waitedMs))));
    }
  }

  /**
   * Blob GC: weights no catalog version names and unfinished uploads, older
   * than MODEL_BLOB_GC_GRACE_MS, leave the store; this replica's cache drops
   * files of digests no version names; reports of replicas long gone go.
   */
  async collectGarbage(): Promise<{ blobs: string[]; cacheFiles: string[] }> {
    const grace = this.options.blobGcGraceMs;
    try {
      const blobs = await this.store.collectUnreferenced(grace, CATALOG_LOCK_KEY);
      await this.store.sweepUnfinished(grace);
      const keep = new Set(await this.store.referencedDigests());
      for (const model of this.registry.list()) for (const v of model.versions.values()) if (v.digest) keep.add(v.digest);
      const cacheFiles = await this.cache.collect(keep, grace);
      await this.db.prisma.modelReplica.deleteMany({ where: { expiresAt: { lt: new Date(Date.now() - GONE_REPLICA_KEEP_MS) } } });
      if (blobs.length > 0 || cacheFiles.length > 0) this.log.info({ blobs, cacheFiles }, 'model weights no version references were deleted');
      return { blobs, cacheFiles };
    } catch (error) {
      this.log.warn({ err: error instanceof Error ? error.message : String(error) }, 'model blob GC failed; retried on the next heartbeat');
      return { blobs: [], cacheFiles: [] };
    }
  }

  /** Checks weights in the inspection child, then the config against the graph it read. */
  private async validate(name: string, file: string, config: ModelConfig | null): Promise<void> {
    const graph = await this.inspector.inspect(name, file);
    this.registry.checkGraph(name, config, graph.inputs, graph.outputs);
    // Its model_warmup samples run once each (the inspector ran only zeros): a warm-up that cannot run is refused now.
    if (config?.model_warmup?.length) await this.registry.validateWarmup(name, file, config, this.warmupFiles(config));
  }

  /** The warm-up files a catalog config names (warmup_files), fetched by digest like weights; null: it names none. */
  private warmupFiles(config: ModelConfig | null): WarmupFileReader | null {
    const files = config?.warmup_files;
    if (!files) return null;
    return async (fileName) => {
      const digest = files[fileName];
      return digest ? readFile(await this.cache.ensure(digest)) : null;
    };
  }

  /**
   * Stores a load's `file:warmup/<name>` files in the weight store: each must
   * be an input_data_file of the config's model_warmup. Whether each the
   * config names is there and of one item's size is checked by the warm-up
   * validation (MODEL_INVALID WARMUP_FILE_MISSING / _SIZE).
   */
  private async storeWarmupFiles(config: ModelConfig, uploaded: Map<string, Uint8Array>): Promise<Record<string, string>> {
    const named = warmupFileNames(config);
    const stored: Record<string, string> = {};
    for (const [fileName, bytes] of uploaded) {
      if (!named.has(fileName)) throw new BadInputError(`file:warmup/${fileName}: no model_warmup input names it as input_data_file`, `parameters.file:warmup/${fileName}`);
      stored[fileName] = (await this.store.put(bytesSource(bytes), this.options.uploadMaxBytes)).digest;
    }
    return stored;
  }

  /** Runs a reconcile pass that starts after this call (coalescing callers while one is waiting). */
  reconcile(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (!this.running) {
      this.running = this.reconcileOnce().finally(() => {
        this.running = null;
      });
      return this.running;
    }
    if (!this.queued) {
      this.queued = this.running
        .catch(() => undefined)
        .then(() => {
          this.queued = null;
          return this.reconcile();
        });
    }
    return this.queued;
  }

  private async reconcileOnce(): Promise<void> {
    let rows: CatalogRow[];
    try {
      rows = (await this.db.prisma.modelCatalogVersion.findMany({ orderBy: { generation: 'asc' } })) as CatalogRow[];
      this.lastError = null;
    } catch (error) {
      this.lastError = error instanceof Error ? error.message : String(error);
      this.log.warn({ err: this.lastError }, 'model catalog reconcile could not read the catalog');
      return;
    }
    for (const row of rows) {
      const k = key(row.model, row.version);
      const done = this.applied.get(k);
      if (done !== undefined && done >= row.generation) continue;
      const tried = this.attempts.get(k);
      const attempts = tried?.generation === row.generation ? tried.count : 0;
      // A change that keeps failing here (broken weights, an unreachable store) is retried on the next
      // reconciles, MAX_APPLY_ATTEMPTS times in all; a new change to the version starts over.
      if (attempts >= MAX_APPLY_ATTEMPTS) continue;
      try {
        await this.applyRow(row, done === undefined && !this.firstReconcileDone);
        this.failures.delete(k);
        this.attempts.delete(k);
        this.applied.set(k, row.generation);
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        this.failures.set(k, reason);
        this.attempts.set(k, { generation: row.generation, count: attempts + 1 });
        this.log.error({ model: row.model, version: row.version, generation: String(row.generation), attempt: attempts + 1, reason }, 'model catalog change could not be applied on this replica');
      }
      if (row.generation > this.generation) this.generation = row.generation;
    }
    this.applyTraffic(rows);
    for (const row of rows) if (row.generation > this.catalogGeneration) this.catalogGeneration = row.generation;
    await this.report();
  }

  /** Every model's split, from the rows (a model whose rows carry no percent has none). */
  private applyTraffic(rows: CatalogRow[]): void {
    const splits = new Map<string, Map<number, number>>();
    for (const row of rows) {
      if (!splits.has(row.model)) splits.set(row.model, new Map());
      if (row.trafficPercent !== null && row.desiredState === 'LOADED') splits.get(row.model)!.set(row.version, row.trafficPercent);
    }
    for (const [model, weights] of splits) this.registry.setTraffic(model, weights.size > 0 ? weights : null);
    const shadows = new Map<string, { version: number; percent: number } | null>();
    for (const row of rows) {
      if (!shadows.has(row.model)) shadows.set(row.model, null);
      if (row.shadowPercent !== null && row.shadowPercent > 0 && row.desiredState === 'LOADED') shadows.set(row.model, { version: row.version, percent: row.shadowPercent });
    }
    for (const [model, target] of shadows) this.registry.setShadow(model, target);
  }

  /**
   * Runs `percent` of the model's served requests also on `version`, off the
   * request path, comparing its answers with the served ones (fleet-wide; 0
   * clears the shadow). One shadow per model: setting one replaces another.
   */
  async setShadow(caller: Actor, name: string, version: string, percent: number): Promise<void> {
    ModelFleet.authorize(caller, name);
    const { rows, versions } = await this.knownVersions(name);
    if (versions.length === 0) throw new NotFoundError(`Model "${name}" is not in the repository`, { model: name });
    const v = ModelFleet.versionNumber(version);
    if (!versions.includes(v)) throw new NotFoundError(`Model "${name}" has no version ${version}`, { model: name, version });
    if (!Number.isInteger(percent) || percent < 0 || percent > 100) throw new BadInputError('percent must be a whole number from 0 to 100 (0 clears the shadow)', 'percent');
    if (percent > 0 && (rows.get(v)?.desiredState ?? 'LOADED') !== 'LOADED') throw new BadInputError(`version ${version} is unloaded: load it before shadowing it`, 'version');
    await this.commit(
      caller,
      name,
      'model.shadow',
      versions.map((x) => ({ version: x, desiredState: rows.get(x)?.desiredState ?? 'LOADED', shadowPercent: x === v && percent > 0 ? percent : null })),
    );
  }

  /**
   * Restores the model's serving state from before its last serving change
   * (publish, load, unload, reload, traffic, or a rollback: a second rollback
   * undoes the first), fleet-wide, as one change with its audit events.
   * BAD_USER_INPUT when the catalog holds no earlier state.
   */
  async rollback(caller: Actor, name: string): Promise<void> {
    ModelFleet.authorize(caller, name);
    const { versions } = await this.knownVersions(name);
    if (versions.length === 0) throw new NotFoundError(`Model "${name}" is not in the repository`, { model: name });
    const snapshot = await this.db.prisma.modelServingSnapshot.findFirst({ where: { model: name }, orderBy: { generation: 'desc' } });
    if (!snapshot) throw new BadInputError(`Model "${name}" has no earlier serving state to roll back to (no change was made through the catalog)`, 'model');
    const seed = await this.registry.seedVersions(name);
    const changes = (snapshot.versions as unknown as { version: number; row: SnapshotRow | null }[]).map(({ version, row }): VersionChange => {
      if (row) return { version, desiredState: row.desiredState, config: row.config as ModelConfig | null, digest: row.digest, trafficPercent: row.trafficPercent };
      // No row before: the seed's own files served it (LOADED), or it did not exist (UNLOADED).
      return seed.includes(version) ? { version, desiredState: 'LOADED', config: null, digest: null, trafficPercent: null } : { version, desiredState: 'UNLOADED', trafficPercent: null };
    });
    await this.commit(caller, name, 'model.rollback', changes);
  }

  /**
   * Splits the requests that name no version across versions by percent
   * (summing to 100; every other version gets none), fleet-wide. Each listed
   * version must be known and desired LOADED. An empty list clears the split.
   */
  async setTraffic(caller: Actor, name: string, weights: { version: string; percent: number }[]): Promise<bigint> {
    ModelFleet.authorize(caller, name);
    const { rows, versions } = await this.knownVersions(name);
    if (versions.length === 0) throw new NotFoundError(`Model "${name}" is not in the repository`, { model: name });
    const split = new Map<number, number>();
    weights.forEach((w, i) => {
      const v = ModelFleet.versionNumber(w.version);
      if (!versions.includes(v)) throw new NotFoundError(`Model "${name}" has no version ${w.version}`, { model: name, version: w.version });
      if ((rows.get(v)?.desiredState ?? 'LOADED') !== 'LOADED') throw new BadInputError(`version ${w.version} is unloaded: load it before routing traffic to it`, `weights[${i}].version`);
      if (!Number.isInteger(w.percent) || w.percent < 0 || w.percent > 100) throw new BadInputError('percent must be a whole number from 0 to 100', `weights[${i}].percent`);
      if (split.has(v)) throw new BadInputError(`version ${w.version} is listed twice`, `weights[${i}].version`);
      split.set(v, w.percent);
    });
    const sum = [...split.values()].reduce((a, b) => a + b, 0);
    if (split.size > 0 && sum !== 100) throw new BadInputError(`the percentages sum to ${sum}, not 100`, 'weights');
    return this.commit(
      caller,
      name,
      'model.traffic',
      versions.map((v) => ({ version: v, desiredState: rows.get(v)?.desiredState ?? 'LOADED', trafficPercent: split.size > 0 ? (split.get(v) ?? 0) : null })),
    );
  }

  /** `atStart`: the initial reconcile, right after this replica loaded its seed. */
  private async applyRow(row: CatalogRow, atStart: boolean): Promise<void> {
    const name = row.model;
    const version = row.version;
    if (row.desiredState === 'UNLOADED') {
      const current = this.registry.list().find((m) => m.name === name)?.versions.get(version);
      if (current && current.status !== 'UNLOADED') await this.registry.unload(name, String(version));
      return;
    }
    const current = this.registry.list().find((m) => m.name === name)?.versions.get(version);
    const k = key(name, version);
    // A fresh replica has just loaded the seed's own files: nothing to redo for a plain seed row.
    if (atStart && !row.digest && row.config === null && current?.status === 'READY' && current.source === 'SEED') {
      this.loadedAt.set(k, row.loadGeneration);
      return;
    }
    // Serving this content already (a traffic change, or a load of a loaded version): no reload.
    const serving = this.loadedAt.get(k) ?? (current?.source === 'SEED' ? 0n : undefined);
    if (current?.status === 'READY' && serving === row.loadGeneration) return;
    const config = row.config === null ? null : modelConfigSchema.parse(row.config);
    let source;
    const warmupFiles = this.warmupFiles(config) ?? undefined;
    if (row.digest) {
      source = { modelPath: await this.cache.ensure(row.digest), fileConfig: config, source: 'CATALOG' as const, digest: row.digest, ...(warmupFiles ? { warmupFiles } : {}) };
    } else {
      try {
        source = { ...(await this.registry.seedSource(name, version, config)), ...(warmupFiles ? { warmupFiles } : {}) };
      } catch (error) {
        if (!(error instanceof NotFoundError)) throw error;
        // A seed version this replica's MODEL_REPOSITORY does not hold: nothing to serve here.
        this.log.info({ model: name, version }, 'model catalog names a seed version this replica\'s repository lacks; skipped');
        return;
      }
    }
    const state = await this.registry.apply(name, version, source);
    if (state.status !== 'READY' || state.reason) throw new Error(state.reason ?? `version is ${state.status}`);
    this.loadedAt.set(k, row.loadGeneration);
  }

  /** Every version the fleet knows of a model: catalog rows, the seed's folders, this replica's registry. */
  private async knownVersions(name: string): Promise<{ rows: Map<number, CatalogRow>; versions: number[] }> {
    const rows = new Map<number, CatalogRow>();
    for (const row of (await this.db.prisma.modelCatalogVersion.findMany({ where: { model: name } })) as CatalogRow[]) rows.set(row.version, row);
    const versions = new Set<number>(rows.keys());
    for (const v of await this.registry.seedVersions(name)) versions.add(v);
    for (const v of this.registry.list().find((m) => m.name === name)?.versions.keys() ?? []) versions.add(v);
    return { rows, versions: [...versions].sort((a, b) => a - b) };
  }

  /** A key (not the CLI on the database) may change only what assertModelManageable admits: admin any, models:manage its tenant's. */
  private static authorize(caller: Actor, name: string): void {
    if (caller.principal) assertModelManageable(caller.principal, name);
  }

  private static versionNumber(version: string): number {
    if (!/^[1-9]\d{0,8}$/.test(version)) throw new BadInputError(`version must be a positive whole number, got "${version}"`, 'version');
    return Number(version);
  }

  /**
   * Sets a model's versions (one, or all it has) LOADED or UNLOADED fleet-wide;
   * `reload` bumps the generation even when the state is unchanged, so every
   * replica reloads config and weights. Answers once this replica applied it.
   */
  async setDesired(caller: Actor, name: string, version: string | null | undefined, desiredState: DesiredState, action: string): Promise<bigint> {
    ModelFleet.authorize(caller, name);
    const { rows, versions } = await this.knownVersions(name);
    if (versions.length === 0) throw new NotFoundError(`Model "${name}" is not in the repository`, { model: name });
    let targets = versions;
    if (version !== undefined && version !== null) {
      const v = ModelFleet.versionNumber(version);
      if (!versions.includes(v)) throw new NotFoundError(`Model "${name}" has no version ${version}`, { model: name, version });
      targets = [v];
    }
    return this.commit(caller, name, action, targets.map((v) => ({ version: v, desiredState, config: rows.get(v)?.config as ModelConfig | null | undefined, digest: rows.get(v)?.digest })));
  }

  /**
   * Triton's load with override (`config`, `file:<v>/model.onnx`): the files'
   * versions are published with the given config and every other version of
   * the model is unloaded; a config alone applies to every version. Without
   * parameters, loads every version. Validated before anything commits.
   */
  async tritonLoad(caller: Actor, name: string, parameters: TritonLoadParameters): Promise<bigint> {
    ModelFleet.authorize(caller, name);
    if (!MODEL_NAME.test(name)) throw new BadInputError('model name: letters, digits, _ . - (at most 128)', 'model');
    const parsed = parameters.config !== undefined ? parseLoadConfig(name, parameters.config) : undefined;
    if ((parameters.files.size > 0 || parameters.warmupFiles.size > 0) && !parsed) {
      throw new BadInputError('a load with files needs a config parameter (Triton\'s override semantics)', 'parameters.config');
    }
    const uploaded = parsed ? await this.storeWarmupFiles(parsed, parameters.warmupFiles) : {};
    if (parameters.files.size > 0) {
      const config = withWarmupFiles(parsed!, uploaded, null);
      const published: VersionChange[] = [];
      for (const [version, bytes] of [...parameters.files].sort((a, b) => a[0] - b[0])) {
        published.push({ version, desiredState: 'LOADED', config, digest: await this.publishWeights(name, bytesSource(bytes), config) });
      }
      const { versions } = await this.knownVersions(name);
      const others = versions.filter((v) => !parameters.files.has(v)).map((v): VersionChange => ({ version: v, desiredState: 'UNLOADED' }));
      return this.commit(caller, name, 'model.publish', [...published, ...others]);
    }
    if (!parsed) return this.setDesired(caller, name, null, 'LOADED', 'model.load');
    const { rows, versions } = await this.knownVersions(name);
    if (versions.length === 0) throw new NotFoundError(`Model "${name}" is not in the repository`, { model: name });
    const configs = new Map<number, ModelConfig>();
    for (const v of versions) {
      const row = rows.get(v);
      const config = withWarmupFiles(parsed, uploaded, row?.config ? modelConfigSchema.parse(row.config) : null);
      const digest = row?.digest ?? null;
      const source = digest ? await this.cache.ensure(digest) : (await this.registry.seedSource(name, v, config)).modelPath;
      await this.validate(name, source, config);
      configs.set(v, config);
    }
    return this.commit(caller, name, 'model.load', versions.map((v) => ({ version: v, desiredState: 'LOADED', config: configs.get(v)!, digest: rows.get(v)?.digest ?? null })));
  }

  /**
   * Stores weights (hashed while streaming, bounded by MODEL_UPLOAD_MAX_BYTES),
   * fetches them back into this replica's cache (digest verified) and opens
   * them with the config in a worker: MODEL_INVALID / MODEL_TOO_LARGE before
   * anything is committed.
   */
  async publishWeights(name: string, source: AsyncIterable<Uint8Array>, config: ModelConfig | null): Promise<string> {
    const { digest } = await this.store.put(source, this.options.uploadMaxBytes);
    const file = await this.cache.ensure(digest);
    await this.validate(name, file, config);
    return digest;
  }

  /**
   * The streamed upload: raw `model.onnx` bytes for one version, hashed and
   * stored while they arrive, validated with the model's config (the latest
   * catalog config of the model, else the seed's config.json, else derived
   * from the graph), then published LOADED fleet-wide. Other versions are
   * untouched. Answers the digest and size.
   */
  async uploadVersion(caller: Actor, name: string, version: string, source: AsyncIterable<Uint8Array>): Promise<{ digest: string; sizeBytes: number; generation: bigint }> {
    ModelFleet.authorize(caller, name);
    if (!MODEL_NAME.test(name)) throw new BadInputError('model name: letters, digits, _ . - (at most 128)', 'model');
    const v = ModelFleet.versionNumber(version);
    const rows = (await this.db.prisma.modelCatalogVersion.findMany({ where: { model: name }, orderBy: { version: 'desc' } })) as CatalogRow[];
    const own = rows.find((r) => r.version === v && r.config !== null) ?? rows.find((r) => r.config !== null);
    const config = own ? modelConfigSchema.parse(own.config) : await this.registry.seedConfig(name);
    const { digest, sizeBytes } = await this.store.put(source, this.options.uploadMaxBytes);
    await this.validate(name, await this.cache.ensure(digest), config);
    const generation = await this.commit(caller, name, 'model.publish', [{ version: v, desiredState: 'LOADED', config, digest }]);
    return { digest, sizeBytes, generation };
  }

  get maxUploadBytes(): number {
    return this.options.uploadMaxBytes;
  }

  tooLarge(): ModelTooLargeError {
    return new ModelTooLargeError(`Model weights exceed MODEL_UPLOAD_MAX_BYTES (${this.options.uploadMaxBytes} bytes)`, { maxBytes: this.options.uploadMaxBytes });
  }

  /** Writes the rows, their audit events and the NOTIFY in one transaction; then applies locally. */
  private async commit(caller: Actor, name: string, action: string, changes: VersionChange[]): Promise<bigint> {
    if (changes.length === 0) return this.catalogGeneration;
    const generation = await this.db.prisma.$transaction(async (tx) => {
      await tx.$queryRawUnsafe('SELECT pg_advisory_xact_lock($1)::text', CATALOG_LOCK_KEY);
      const [top] = await tx.$queryRawUnsafe<{ g: bigint | null }[]>('SELECT MAX("generation") AS g FROM "ModelCatalogVersion"');
      const next = (top?.g ?? 0n) + 1n;
      const ownerTenantId = modelOwner(name);
      const snapshot: { version: number; row: SnapshotRow | null }[] = [];
      for (const change of changes) {
        const before = await tx.modelCatalogVersion.findUnique({ where: { model_version: { model: name, version: change.version } } });
        snapshot.push({ version: change.version, row: before ? { desiredState: before.desiredState, config: before.config, digest: before.digest, trafficPercent: before.trafficPercent } : null });
        const config = change.config === undefined ? (before?.config ?? null) : change.config;
        const digest = change.digest === undefined ? (before?.digest ?? null) : change.digest;
        const trafficPercent = change.trafficPercent === undefined ? (before?.trafficPercent ?? null) : change.trafficPercent;
        const shadowPercent = change.shadowPercent === undefined ? (before?.shadowPercent ?? null) : change.shadowPercent;
        // Replicas reload only when the content moves: new config or weights, a (re)load of an unloaded version, or a reload.
        // A version's first row with the seed's own config and weights keeps load generation 0: what every replica loaded at start.
        const contentChanged = before
          ? action === 'model.reload' ||
            digest !== before.digest ||
            JSON.stringify(config) !== JSON.stringify(before.config) ||
            (change.desiredState === 'LOADED' && before.desiredState !== 'LOADED')
          : action === 'model.reload' || digest !== null || config !== null;
        const loadGeneration = contentChanged ? next : (before?.loadGeneration ?? 0n);
        // Under the lock blob GC takes too: weights named here cannot be collected between this check and the commit.
        if (digest !== null && change.desiredState === 'LOADED' && (await tx.modelBlob.count({ where: { digest } })) === 0) {
          throw new ModelUnavailableError(`Model "${name}" version ${change.version}: its weights ${digest} are no longer in the weight store (collected as unreferenced); upload them again`, { model: name });
        }
        const data = {
          ownerTenantId,
          desiredState: change.desiredState,
          config: config === null ? Prisma.DbNull : (config as Prisma.InputJsonObject),
          digest,
          trafficPercent,
          shadowPercent,
          generation: next,
          loadGeneration,
        };
        await tx.modelCatalogVersion.upsert({
          where: { model_version: { model: name, version: change.version } },
          create: { model: name, version: change.version, ...data },
          update: data,
        });
        await tx.auditEvent.create({
          data: {
            ...auditActor(caller),
            action,
            targetType: 'ModelVersion',
            targetId: key(name, change.version),
            before: before
              ? { desiredState: before.desiredState, digest: before.digest, trafficPercent: before.trafficPercent, shadowPercent: before.shadowPercent, generation: String(before.generation) }
              : Prisma.DbNull,
            after: { desiredState: change.desiredState, digest, trafficPercent, shadowPercent, generation: String(next) },
          },
        });
      }
      // A shadow changes no answer: only serving changes are states to roll back to.
      if (action !== 'model.shadow') {
        await tx.modelServingSnapshot.create({ data: { model: name, generation: next, versions: snapshot as unknown as Prisma.InputJsonArray } });
        await tx.$executeRawUnsafe(
          `DELETE FROM "ModelServingSnapshot" WHERE "model" = $1 AND "id" NOT IN (SELECT "id" FROM "ModelServingSnapshot" WHERE "model" = $1 ORDER BY "generation" DESC LIMIT ${SNAPSHOTS_KEPT})`,
          name,
        );
      }
      if (ownerTenantId !== null && changes.some((c) => c.desiredState === 'LOADED')) await this.checkQuota(tx, ownerTenantId);
      await notifyChannel(tx, MODEL_CATALOG_CHANNEL, JSON.stringify({ model: name, generation: String(next) }));
      return next;
    }, { timeout: 30_000 });
    this.log.info({ model: name, action, generation: String(generation), versions: changes.map((c) => `${c.version}:${c.desiredState}`) }, 'model catalog changed');
    await this.reconcile();
    const failed = changes.map((c) => this.failures.get(key(name, c.version))).filter((f): f is string => f !== undefined);
    if (failed.length > 0) {
      throw new ModelUnavailableError(`Model "${name}": the change was committed (generation ${generation}) but this replica could not apply it: ${failed.join('; ')}`, { model: name });
    }
    return generation;
  }

  /**
   * The tenant's private models after the change, counted in the change's
   * transaction: models with a LOADED version, and the bytes of their LOADED
   * versions' distinct weights. Over MODEL_TENANT_MAX_MODELS / _BYTES the
   * transaction rolls back (MODEL_QUOTA_EXCEEDED); unloading frees quota.
   */
  private async checkQuota(tx: Prisma.TransactionClient, tenantId: string): Promise<void> {
    const [usage] = await tx.$queryRawUnsafe<{ models: number; bytes: string }[]>(
      `SELECT COUNT(DISTINCT v."model")::int AS models,
              COALESCE((SELECT SUM(b."sizeBytes") FROM "ModelBlob" b WHERE b."digest" IN (
                SELECT "digest" FROM "ModelCatalogVersion" WHERE "ownerTenantId" = $1::uuid AND "desiredState" = 'LOADED' AND "digest" IS NOT NULL)), 0)::text AS bytes
         FROM "ModelCatalogVersion" v WHERE v."ownerTenantId" = $1::uuid AND v."desiredState" = 'LOADED'`,
      tenantId,
    );
    const models = usage?.models ?? 0;
    const bytes = Number(usage?.bytes ?? '0');
    if (models > this.options.tenantMaxModels) {
      throw new ModelQuotaExceededError(`The tenant's private models would number ${models}, over MODEL_TENANT_MAX_MODELS (${this.options.tenantMaxModels}); unload one first`, {
        quota: 'MODEL_TENANT_MAX_MODELS',
        limit: this.options.tenantMaxModels,
        requested: models,
      });
    }
    if (bytes > this.options.tenantMaxBytes) {
      throw new ModelQuotaExceededError(`The tenant's private model weights would take ${bytes} bytes, over MODEL_TENANT_MAX_BYTES (${this.options.tenantMaxBytes}); unload a version first`, {
        quota: 'MODEL_TENANT_MAX_BYTES',
        limit: this.options.tenantMaxBytes,
        requested: bytes,
      });
    }
  }

  /** A model's versions: the catalog's wish, the source, and this replica's state. */
  async versions(caller: Actor, name: string): Promise<FleetVersionView[]> {
    ModelFleet.authorize(caller, name);
    const { rows, versions } = await this.knownVersions(name);
    if (versions.length === 0) throw new NotFoundError(`Model "${name}" is not in the repository`, { model: name });
    const local = this.registry.list().find((m) => m.name === name);
    const reports = await this.liveReplicas();
    return versions.map((v) => {
      const row = rows.get(v);
      const state = local?.versions.get(v);
      const applied = this.applied.get(key(name, v));
      return {
        model: name,
        version: v,
        source: row ? (row.digest ? 'CATALOG' : 'SEED') : (state?.source ?? 'SEED'),
        desiredState: row?.desiredState ?? 'LOADED',
        digest: row?.digest ?? null,
        generation: row ? Number(row.generation) : null,
        replicaStatus: state?.status ?? 'UNLOADED',
        replicaReason: this.failures.get(key(name, v)) ?? state?.reason ?? null,
        appliedGeneration: applied === undefined ? null : Number(applied),
        trafficPercent: row?.trafficPercent ?? null,
        shadowPercent: row?.shadowPercent ?? null,
        warmupMs: state?.warmupMs ?? null,
        warmupRuns: state?.warmupMs === null || state === undefined ? null : state.warmupRuns,
        shadow: state ? { ...state.shadowStats } : emptyShadowStats(),
        replicas: reports.map((r) => replicaView(r, name, v, row ? Number(row.generation) : null)),
      };
    });
  }
}

/** One version's state in a replica's report (UNLOADED when the replica holds none). */
function replicaView(report: ReplicaRow, model: string, version: number, catalogGeneration: number | null): ReplicaVersionView {
  const versions = Array.isArray(report.versions) ? (report.versions as ReportedVersion[]) : [];
  const entry = versions.find((e) => e.model === model && e.version === version);
  const generation = Number(report.generation);
  return {
    replica: report.id,
    host: report.host,
    pid: report.pid,
    generation,
    status: entry?.status ?? 'UNLOADED',
    reason: entry?.reason ?? null,
    appliedGeneration: entry?.appliedGeneration ?? null,
    lagging: catalogGeneration !== null && generation < catalogGeneration,
  };
}
