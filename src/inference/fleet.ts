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
 * streaming, then onnxruntime opens the weights in a worker and the config is
 * checked against the graph; a failure answers MODEL_INVALID and commits
 * nothing, so the serving version is untouched.
 */
import type { Database } from '../db/database';
import { Prisma } from '../db/generated/client';
import { PgChannelListener, notifyChannel } from '../db/pg-channel';
import type { Logger } from '../log/logger';
import { auditActor, type Actor } from '../auth/actor';
import { assertModelManageable, modelOwner } from '../auth/scopes';
import { BadInputError, ModelQuotaExceededError, ModelTooLargeError, ModelUnavailableError, NotFoundError } from '../errors';
import { MODEL_NAME, modelConfigSchema, type ModelConfig } from './model-config';
import { emptyShadowStats, type ModelRegistry, type ModelStatus, type ShadowStats, type VersionOrigin } from './registry';
import { bytesSource, type WeightStore } from './weight-store';
import type { WeightCache } from './weight-cache';
import { parseLoadConfig } from './triton-config';

export const MODEL_CATALOG_CHANNEL = 'modelgate_model_catalog';
/** Serialises catalog writers so generations are handed out in commit order. */
const CATALOG_LOCK_KEY = 23_0023;
/** How many reconciles try a change that fails on this replica before it waits for the next change. */
const MAX_APPLY_ATTEMPTS = 5;
/** Chunks of an upload no blob names, older than this, are what a crash left: swept on the reconcile timer. */
const UNFINISHED_UPLOAD_MAX_AGE_MS = 60 * 60 * 1000;

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
}

export interface FleetOptions {
  uploadMaxBytes: number;
  reconcileIntervalMs: number;
  /** How many models one tenant's private namespace may hold desired LOADED (MODEL_TENANT_MAX_MODELS). */
  tenantMaxModels: number;
  /** How many bytes of weights one tenant's LOADED private versions may hold (MODEL_TENANT_MAX_BYTES). */
  tenantMaxBytes: number;
  /** Postgres URL to LISTEN on; undefined in embedded mode (the periodic reconcile alone). */
  listenUrl: string | undefined;
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

/**
 * The version a Triton load's `file:<v>/model.onnx` parameter names (REST
 * and gRPC alike); BAD_INPUT for any other `file:` path.
 */
export function loadFileVersion(parameter: string): number {
  const match = FILE_PARAMETER.exec(parameter);
  if (!match) throw new BadInputError(`${parameter}: only file:<version>/model.onnx is accepted`, `parameters.${parameter}`);
  return Number(match[1]);
}

export interface TritonLoadParameters {
  config?: unknown;
  /** `file:<version>/model.onnx` → bytes. */
  files: Map<number, Uint8Array>;
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
  private closed = false;
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
  ) {}

  get listening(): boolean {
    return this.listener?.up ?? false;
  }

  /** Starts listening and reconciling; the first reconcile runs once the database is up. */
  start(): void {
    if (this.options.listenUrl) {
      this.listener = new PgChannelListener(this.options.listenUrl, MODEL_CATALOG_CHANNEL, this.log, {
        message: () => void this.reconcile(),
        state: (up) => {
          if (up) void this.reconcile();
        },
      });
      this.listener.start();
    }
    this.timer = setInterval(() => {
      void this.reconcile();
      void this.store.sweepUnfinished(UNFINISHED_UPLOAD_MAX_AGE_MS).catch(() => undefined);
    }, this.options.reconcileIntervalMs);
    this.timer.unref();
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
    await this.listener?.close();
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
  async setTraffic(caller: Actor, name: string, weights: { version: string; percent: number }[]): Promise<void> {
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
    await this.commit(
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
    if (row.digest) {
      source = { modelPath: await this.cache.ensure(row.digest), fileConfig: config, source: 'CATALOG' as const, digest: row.digest };
    } else {
      try {
        source = await this.registry.seedSource(name, version, config);
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
  async setDesired(caller: Actor, name: string, version: string | null | undefined, desiredState: DesiredState, action: string): Promise<void> {
    ModelFleet.authorize(caller, name);
    const { rows, versions } = await this.knownVersions(name);
    if (versions.length === 0) throw new NotFoundError(`Model "${name}" is not in the repository`, { model: name });
    let targets = versions;
    if (version !== undefined && version !== null) {
      const v = ModelFleet.versionNumber(version);
      if (!versions.includes(v)) throw new NotFoundError(`Model "${name}" has no version ${version}`, { model: name, version });
      targets = [v];
    }
    await this.commit(caller, name, action, targets.map((v) => ({ version: v, desiredState, config: rows.get(v)?.config as ModelConfig | null | undefined, digest: rows.get(v)?.digest })));
  }

  /**
   * Triton's load with override (`config`, `file:<v>/model.onnx`): the files'
   * versions are published with the given config and every other version of
   * the model is unloaded; a config alone applies to every version. Without
   * parameters, loads every version. Validated before anything commits.
   */
  async tritonLoad(caller: Actor, name: string, parameters: TritonLoadParameters): Promise<void> {
    ModelFleet.authorize(caller, name);
    if (!MODEL_NAME.test(name)) throw new BadInputError('model name: letters, digits, _ . - (at most 128)', 'model');
    const config = parameters.config !== undefined ? parseLoadConfig(name, parameters.config) : undefined;
    if (parameters.files.size > 0) {
      if (!config) throw new BadInputError('a load with files needs a config parameter (Triton\'s override semantics)', 'parameters.config');
      const published: VersionChange[] = [];
      for (const [version, bytes] of [...parameters.files].sort((a, b) => a[0] - b[0])) {
        published.push({ version, desiredState: 'LOADED', config, digest: await this.publishWeights(name, bytesSource(bytes), config) });
      }
      const { versions } = await this.knownVersions(name);
      const others = versions.filter((v) => !parameters.files.has(v)).map((v): VersionChange => ({ version: v, desiredState: 'UNLOADED' }));
      await this.commit(caller, name, 'model.publish', [...published, ...others]);
      return;
    }
    if (!config) return this.setDesired(caller, name, null, 'LOADED', 'model.load');
    const { rows, versions } = await this.knownVersions(name);
    if (versions.length === 0) throw new NotFoundError(`Model "${name}" is not in the repository`, { model: name });
    for (const v of versions) {
      const digest = rows.get(v)?.digest ?? null;
      const source = digest ? await this.cache.ensure(digest) : (await this.registry.seedSource(name, v, config)).modelPath;
      await this.registry.validate(name, source, config);
    }
    await this.commit(caller, name, 'model.load', versions.map((v) => ({ version: v, desiredState: 'LOADED', config, digest: rows.get(v)?.digest ?? null })));
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
    await this.registry.validate(name, file, config);
    return digest;
  }

  /**
   * The streamed upload: raw `model.onnx` bytes for one version, hashed and
   * stored while they arrive, validated with the model's config (the latest
   * catalog config of the model, else the seed's config.json, else derived
   * from the graph), then published LOADED fleet-wide. Other versions are
   * untouched. Answers the digest and size.
   */
  async uploadVersion(caller: Actor, name: string, version: string, source: AsyncIterable<Uint8Array>): Promise<{ digest: string; sizeBytes: number }> {
    ModelFleet.authorize(caller, name);
    if (!MODEL_NAME.test(name)) throw new BadInputError('model name: letters, digits, _ . - (at most 128)', 'model');
    const v = ModelFleet.versionNumber(version);
    const rows = (await this.db.prisma.modelCatalogVersion.findMany({ where: { model: name }, orderBy: { version: 'desc' } })) as CatalogRow[];
    const own = rows.find((r) => r.version === v && r.config !== null) ?? rows.find((r) => r.config !== null);
    const config = own ? modelConfigSchema.parse(own.config) : await this.registry.seedConfig(name);
    const { digest, sizeBytes } = await this.store.put(source, this.options.uploadMaxBytes);
    await this.registry.validate(name, await this.cache.ensure(digest), config);
    await this.commit(caller, name, 'model.publish', [{ version: v, desiredState: 'LOADED', config, digest }]);
    return { digest, sizeBytes };
  }

  get maxUploadBytes(): number {
    return this.options.uploadMaxBytes;
  }

  tooLarge(): ModelTooLargeError {
    return new ModelTooLargeError(`Model weights exceed MODEL_UPLOAD_MAX_BYTES (${this.options.uploadMaxBytes} bytes)`, { maxBytes: this.options.uploadMaxBytes });
  }

  /** Writes the rows, their audit events and the NOTIFY in one transaction; then applies locally. */
  private async commit(caller: Actor, name: string, action: string, changes: VersionChange[]): Promise<void> {
    if (changes.length === 0) return;
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
      };
    });
  }
}
