/**
 * The model registry: which models the repository holds, which versions are
 * loaded on the worker pool, and each one's status. A version becomes READY
 * only after every worker has loaded it and run a warm-up batch. A reload
 * loads the new session beside the old one and swaps only on success, so a
 * failed reload leaves the old version serving.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../log/logger';
import type { ExecutionProviderName } from '../config';
import { ModelUnavailableError, NotFoundError, BadInputError, ModelInvalidError, unknownModelError } from '../errors';
import { scanRepository, type ModelConfig, type Datatype, type RepositoryEntry } from './model-config';
import { readModelConfig } from './triton-config';
import type { WorkerPool } from './pool';
import { Batcher, type BatchObserver } from './batcher';
import type { TensorMetadata, WarmupSample } from './worker-protocol';
import { BYTES_PER_ELEMENT, ORT_TYPE, datatypeFromOrt, encodeNumbers } from './tensor';
import type { InferenceMetrics } from './metrics';

export type ModelStatus = 'LOADING' | 'READY' | 'FAILED' | 'UNLOADED';

export interface TensorSpec {
  name: string;
  datatype: Datatype;
  /** Without the batch axis when the model batches; -1 is a variable dimension. */
  dims: number[];
}

/** What the engine serves a model with: its config.json, or one derived from the ONNX graph. */
export interface ServedConfig {
  name: string;
  platform: string;
  description: string;
  maxBatchSize: number;
  preferredBatchSizes: number[];
  maxQueueDelayMs: number;
  /** Wait out the queue delay even while no batch of the model runs (Triton's delayed batching); false: adaptive. */
  delayWhenIdle: boolean;
  maxQueueSize: number;
  defaultTimeoutMs: number | null;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  outputKind: 'probabilities' | 'logits' | 'raw';
  preprocessing: ModelConfig['preprocessing'] | null;
  labels: string[];
  cost: number;
  executionProviders: ExecutionProviderName[];
  source: 'CONFIG' | 'DERIVED';
  /** config.json's `response_cache.enable`: identical inputs may be answered from the response cache. */
  responseCache: boolean;
  /** Fields of a Triton config (config.pbtxt, a load's Triton JSON) that modelgate does not honour. */
  warnings: string[];
}

export interface VersionStats {
  requests: number;
  failures: number;
  inferences: number;
  executions: number;
  batchedItems: number;
  queueMsTotal: number;
  computeMsTotal: number;
}

export interface ModelVersion {
  model: string;
  version: number;
  status: ModelStatus;
  reason: string | null;
  provider: ExecutionProviderName | null;
  config: ServedConfig | null;
  batcher: Batcher | null;
  stats: VersionStats;
  loadedAt: Date | null;
  /** Session key on the workers; changes on every successful (re)load. */
  sessionKey: string | null;
  /** Where the serving weights came from: MODEL_REPOSITORY (SEED) or the fleet catalog (CATALOG). */
  source: VersionOrigin;
  /** SHA-256 of catalog weights; null for the seed's own files. */
  digest: string | null;
  /** How long the serving session's warm-up took (the slowest worker), ms; null before one loaded. */
  warmupMs: number | null;
  /** Warm-up runs of the serving session (every model_warmup sample's count; 1 without model_warmup). */
  warmupRuns: number;
  /** Agreement of this version with the serving one, as a shadow (this replica's runs since the shadow was set). */
  shadowStats: ShadowStats;
}

/** A shadow version's comparison with the versions that served the same requests. */
export interface ShadowStats {
  runs: number;
  failures: number;
  /** Requests sampled but not run: shed under load (queue non-empty, in-flight bound, no idle worker) or incompatible. */
  skipped: number;
  /** Items compared (a request of 8 items counts 8). */
  items: number;
  /** Items whose top-1 class (argmax of the first output) agreed. */
  top1Agreements: number;
  /** Largest absolute difference of any output value. */
  maxAbsDifference: number;
}

/** A model's shadow: `percent` of its served requests also run on `version`, off the request path. */
export interface ShadowTarget {
  readonly version: number;
  readonly percent: number;
}

export function emptyShadowStats(): ShadowStats {
  return { runs: 0, failures: 0, skipped: 0, items: 0, top1Agreements: 0, maxAbsDifference: 0 };
}

export type VersionOrigin = 'SEED' | 'CATALOG';

/** What one load reads: the weights file and the config (null: derive it from the graph). */
export interface VersionSource {
  modelPath: string;
  fileConfig: ModelConfig | null;
  source: VersionOrigin;
  digest: string | null;
  /** Where input_data_file files come from (absent: a seed version's own warmup/ folder; a catalog one has none). */
  warmupFiles?: WarmupFileReader;
}

/** A warm-up file's bytes by its name in the model's warmup/ folder; null when there is no such file. */
export type WarmupFileReader = (name: string) => Promise<Buffer | null>;

/** Why a model_warmup input_data_file cannot be used: MODEL_INVALID's reason. */
export class WarmupFileError extends Error {
  constructor(
    readonly reason: 'WARMUP_FILE_MISSING' | 'WARMUP_FILE_SIZE',
    message: string,
  ) {
    super(message);
  }
}

/** A seed folder's warmup/ files. */
export function folderWarmupFiles(directory: string): WarmupFileReader {
  return (name) => readFile(path.join(directory, 'warmup', name)).catch((error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? null : Promise.reject(error)));
}

export interface RegisteredModel {
  name: string;
  directory: string;
  configFile: string | null;
  versions: Map<number, ModelVersion>;
  /** null: no shadow (the request path reads only this field). */
  shadow: ShadowTarget | null;
}

/** Derived configs batch with these settings when the graph's first axis is dynamic. */
const DERIVED_MAX_BATCH_SIZE = 64;
const DERIVED_QUEUE_DELAY_MS = 1;

export interface RegistryOptions {
  repository: string;
  providers: ExecutionProviderName[];
  maxQueueSize: number;
  /** How long a reload or unload lets queued and running requests finish (the longest request deadline). */
  drainTimeoutMs: number;
}

export class ModelRegistry {
  private readonly models = new Map<string, RegisteredModel>();
  private generation = 0;
  private readonly changeListeners: ((model: string) => void)[] = [];
  private initialLoadDone = false;

  constructor(
    private readonly pool: WorkerPool,
    private readonly options: RegistryOptions,
    private readonly metrics: InferenceMetrics,
    private readonly log: Logger,
  ) {
    metrics.readQueuesFrom(() => this.queueLengths());
  }

  /** Every version's batch queue length (0 for one without a batcher: unloaded, failed, loading). */
  private *queueLengths(): Iterable<{ model: string; version: string; pending: number }> {
    for (const model of this.models.values()) {
      for (const v of model.versions.values()) yield { model: model.name, version: String(v.version), pending: v.batcher?.pending ?? 0 };
    }
  }

  get ready(): boolean {
    return this.initialLoadDone;
  }

  /** Scans the repository and loads every version of every model. Failures are recorded, not thrown. */
  async loadAll(): Promise<void> {
    let entries: RepositoryEntry[] = [];
    try {
      entries = await scanRepository(this.options.repository);
    } catch (error) {
      this.log.error({ repository: this.options.repository, err: String(error) }, 'model repository cannot be read');
    }
    for (const entry of entries) {
      const versions = entry.versions.length > 0 ? entry.versions : [1];
      for (const version of versions) await this.loadVersion(entry, version);
    }
    this.initialLoadDone = true;
    this.log.info(
      { models: [...this.models.values()].map((m) => ({ name: m.name, versions: [...m.versions.values()].map((v) => `${v.version}:${v.status}`) })) },
      'model repository loaded',
    );
  }

  /** Called with a model's name whenever one of its versions is loaded, reloaded or unloaded (the response cache drops its answers). */
  onVersionChange(listener: (model: string) => void): void {
    this.changeListeners.push(listener);
  }

  private changed(model: string): void {
    for (const listener of this.changeListeners) listener(model);
  }

  /** Whether a model of this name is registered (any state); on every request's usage record, so a map lookup, not list(). */
  has(name: string): boolean {
    return this.models.has(name);
  }

  list(): RegisteredModel[] {
    return [...this.models.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** A model's version: the requested one, or the latest that is READY (else the latest). */
  find(name: string, version?: string | null): { model: RegisteredModel; version: ModelVersion } {
    const model = this.models.get(name);
    if (!model) throw unknownModelError(name);
    if (version !== undefined && version !== null) {
      const found = model.versions.get(versionNumber(version));
      if (!found) throw new NotFoundError(`Model "${name}" has no version ${version}`, { model: name, version });
      return { model, version: found };
    }
    const sorted = [...model.versions.values()].sort((a, b) => b.version - a.version);
    const chosen = sorted.find((v) => v.status === 'READY') ?? sorted[0];
    if (!chosen) throw new NotFoundError(`Model "${name}" has no versions`, { model: name });
    return { model, version: chosen };
  }

  /** Per model, the catalog's traffic split (version → percent) for requests that name no version. */
  private readonly traffic = new Map<string, Map<number, number>>();

  /** Sets (or, with null, clears) a model's traffic split; the fleet catalog calls it on every reconcile. */
  setTraffic(name: string, weights: Map<number, number> | null): void {
    if (weights && weights.size > 0) this.traffic.set(name, weights);
    else this.traffic.delete(name);
  }

  trafficOf(name: string): Map<number, number> | null {
    return this.traffic.get(name) ?? null;
  }

  /**
   * Sets (or, with null, clears) a model's shadow; the fleet catalog calls it
   * on every reconcile. A new target (another version, or one set after none)
   * starts its agreement figures afresh.
   */
  setShadow(name: string, target: ShadowTarget | null): void {
    const model = this.models.get(name);
    if (!model) return;
    const before = model.shadow;
    if (before?.version === target?.version && before?.percent === target?.percent) return;
    if (target && before?.version !== target.version) {
      const state = model.versions.get(target.version);
      if (state) state.shadowStats = emptyShadowStats();
    }
    model.shadow = target;
    this.log.info({ model: name, shadowVersion: target?.version ?? null, percent: target?.percent ?? 0 }, target ? 'model shadow set' : 'model shadow cleared');
  }

  /** A READY version drawn by the model's split; undefined when it has none or none of its versions is READY. */
  private routed(name: string): { model: RegisteredModel; version: ModelVersion } | undefined {
    const weights = this.traffic.get(name);
    const model = this.models.get(name);
    if (!weights || !model) return undefined;
    const candidates = [...weights].flatMap(([v, percent]) => {
      const state = model.versions.get(v);
      return percent > 0 && state?.status === 'READY' ? [{ state, percent }] : [];
    });
    const total = candidates.reduce((sum, c) => sum + c.percent, 0);
    if (total === 0) return undefined;
    let draw = Math.random() * total;
    for (const c of candidates) {
      draw -= c.percent;
      if (draw < 0) return { model, version: c.state };
    }
    return { model, version: candidates[candidates.length - 1]!.state };
  }

  /** A version by number, or undefined (the shadow runner's lookup: two map reads). */
  versionOf(name: string, version: number): ModelVersion | undefined {
    return this.models.get(name)?.versions.get(version);
  }

  /** Like find, but the version must be READY to take requests; a request naming no version follows the traffic split. */
  findReady(name: string, version?: string | null): { model: RegisteredModel; version: ModelVersion; config: ServedConfig; batcher: Batcher } {
    const found = (version === undefined || version === null ? this.routed(name) : undefined) ?? this.find(name, version);
    const v = found.version;
    if (v.status !== 'READY' || !v.config || !v.batcher) {
      throw new ModelUnavailableError(
        `Model "${name}" version ${v.version} is ${v.status}${v.reason ? `: ${v.reason}` : ''}`,
        { model: name, version: String(v.version), status: v.status },
      );
    }
    return { ...found, config: v.config, batcher: v.batcher };
  }

  /** Loads a model (all versions, or one); picks up models added to the repository since start. */
  async load(name: string, version?: string | null): Promise<RegisteredModel> {
    return this.exclusive(name, () => this.loadUnlocked(name, version));
  }

  private async loadUnlocked(name: string, version?: string | null): Promise<RegisteredModel> {
    const entry = await this.scanOne(name);
    const versions = version ? [this.parseVersion(version, entry)] : entry.versions.length > 0 ? entry.versions : [1];
    for (const v of versions) {
      const existing = this.models.get(name)?.versions.get(v);
      if (existing?.status === 'READY') continue;
      await this.loadVersion(entry, v);
    }
    return this.models.get(name)!;
  }

  /** Reloads config and weights; on failure the old version keeps serving and the error is thrown. */
  async reload(name: string, version?: string | null): Promise<RegisteredModel> {
    return this.exclusive(name, () => this.reloadUnlocked(name, version));
  }

  private async reloadUnlocked(name: string, version?: string | null): Promise<RegisteredModel> {
    const entry = await this.scanOne(name);
    const versions = version ? [this.parseVersion(version, entry)] : entry.versions.length > 0 ? entry.versions : [1];
    const failures: string[] = [];
    for (const v of versions) {
      const state = await this.loadVersion(entry, v);
      if (state.status !== 'READY' || state.reason) failures.push(`version ${v}: ${state.reason ?? state.status}`);
    }
    if (failures.length > 0) {
      throw new ModelUnavailableError(`Reload of "${name}" failed (${failures.join('; ')}); the previous version keeps serving where there was one`, { model: name });
    }
    return this.models.get(name)!;
  }

  async unload(name: string, version?: string | null): Promise<RegisteredModel> {
    return this.exclusive(name, async () => {
      const model = this.models.get(name);
      if (!model) throw new NotFoundError(`Model "${name}" is not in the repository`, { model: name });
      const targets = version ? [this.find(name, version).version] : [...model.versions.values()];
      for (const v of targets) {
        // New requests see UNLOADED at once; those already queued or running finish first.
        const { batcher, sessionKey } = v;
        v.batcher = null;
        v.sessionKey = null;
        v.status = 'UNLOADED';
        v.reason = null;
        this.changed(name);
        await this.retire(batcher, sessionKey);
        this.log.info({ model: name, version: v.version }, 'model unloaded');
      }
      return model;
    });
  }

  /** Lets a batcher's queued and running requests finish, then releases its session. */
  private async retire(batcher: Batcher | null, sessionKey: string | null): Promise<void> {
    await batcher?.drain(this.options.drainTimeoutMs);
    if (sessionKey) await this.pool.unload(sessionKey);
  }

  private readonly locks = new Map<string, Promise<unknown>>();

  /** Admin operations on one model run one at a time (a load racing an unload would leave either state). */
  private exclusive<T>(name: string, run: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(name) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(run);
    this.locks.set(name, next);
    void next.finally(() => {
      if (this.locks.get(name) === next) this.locks.delete(name);
    }).catch(() => undefined);
    return next;
  }

  async close(): Promise<void> {
    for (const model of this.models.values()) for (const v of model.versions.values()) v.batcher?.close();
  }

  private parseVersion(version: string, entry: RepositoryEntry): number {
    const v = versionNumber(version);
    if (!entry.versions.includes(v)) throw new NotFoundError(`Model "${entry.name}" has no version ${version} in the repository`, { model: entry.name, version });
    return v;
  }

  private async scanOne(name: string): Promise<RepositoryEntry> {
    const entries = await scanRepository(this.options.repository);
    const entry = entries.find((e) => e.name === name);
    if (!entry) throw new NotFoundError(`Model "${name}" is not in the repository`, { model: name });
    return entry;
  }

  private registered(entry: RepositoryEntry): RegisteredModel {
    let model = this.models.get(entry.name);
    if (!model) {
      model = { name: entry.name, directory: entry.directory, configFile: entry.configFile, versions: new Map(), shadow: null };
      this.models.set(entry.name, model);
    }
    model.configFile = entry.configFile;
    return model;
  }

  private async loadVersion(entry: RepositoryEntry, version: number): Promise<ModelVersion> {
    return this.loadFrom(entry, version, async () => {
      const fileConfig = await readModelConfig(entry);
      if (!entry.versions.includes(version)) throw new Error(`no ${path.join(String(version), 'model.onnx')} in ${entry.directory}`);
      return { modelPath: path.join(entry.directory, String(version), 'model.onnx'), fileConfig, source: 'SEED', digest: null };
    });
  }

  /**
   * The seed's own files for a version (MODEL_REPOSITORY), with an optional
   * config override (a catalog row's config): NOT_FOUND when the seed lacks it.
   */
  async seedSource(name: string, version: number, configOverride: ModelConfig | null): Promise<VersionSource> {
    const entry = await this.scanOne(name);
    if (!entry.versions.includes(version)) throw new NotFoundError(`Model "${name}" has no version ${version} in the repository`, { model: name, version: String(version) });
    return { modelPath: path.join(entry.directory, String(version), 'model.onnx'), fileConfig: configOverride ?? (await readModelConfig(entry)), source: 'SEED', digest: null };
  }

  /** The seed's config.json of a model; null when the seed has none (or no such model). */
  async seedConfig(name: string): Promise<ModelConfig | null> {
    const entries = await scanRepository(this.options.repository).catch(() => []);
    const entry = entries.find((e) => e.name === name);
    return entry ? readModelConfig(entry) : null;
  }

  /** The version numbers the seed holds for a model (empty when the seed has no such model). */
  async seedVersions(name: string): Promise<number[]> {
    const entries = await scanRepository(this.options.repository).catch(() => []);
    return entries.find((e) => e.name === name)?.versions ?? [];
  }

  /**
   * Loads (or reloads beside the serving one) a version from the given source,
   * as the fleet catalog asks; a failure leaves a serving version serving.
   */
  async apply(name: string, version: number, source: VersionSource): Promise<ModelVersion> {
    return this.exclusive(name, () =>
      this.loadFrom({ name, directory: path.dirname(path.dirname(source.modelPath)), versions: [], configFile: null, pbtxtFile: null }, version, async () => source),
    );
  }

  /**
   * Checks a config against a graph's inputs and outputs (read in isolation
   * by ModelInspector, never in the serving workers): MODEL_INVALID
   * CONFIG_MISMATCH naming the tensor when they disagree.
   */
  checkGraph(name: string, fileConfig: ModelConfig | null, inputs: TensorMetadata[], outputs: TensorMetadata[]): void {
    try {
      const providers = fileConfig?.execution_providers ?? this.options.providers;
      const config = fileConfig ? servedFromFile(fileConfig, this.options.maxQueueSize) : deriveConfig(name, inputs, outputs, providers, this.options.maxQueueSize);
      checkAgainstGraph(config, inputs, outputs);
    } catch (error) {
      throw new ModelInvalidError(`Model "${name}": ${error instanceof Error ? error.message : String(error)}`, { model: name, reason: 'CONFIG_MISMATCH' });
    }
  }

  /**
   * Runs a published config's model_warmup samples once each, in the serving
   * workers, after ModelInspector has opened the weights in isolation (so a
   * graph that crashes onnxruntime never gets here): a warm-up that cannot run
   * is refused (MODEL_INVALID) before the version is committed.
   */
  async validateWarmup(name: string, modelPath: string, fileConfig: ModelConfig | null, files: WarmupFileReader | null): Promise<void> {
    const key = `validate/${name}/${++this.generation}`;
    const providers = fileConfig?.execution_providers ?? this.options.providers;
    let warmup: WarmupSample[] | undefined;
    try {
      // Each sample once: a warm-up that cannot run is refused here, before the version is committed.
      warmup = (await warmupSamples(fileConfig, files))?.map((sample) => ({ ...sample, count: 1 }));
    } catch (error) {
      const reason = error instanceof WarmupFileError ? error.reason : 'CONFIG_INVALID';
      throw new ModelInvalidError(`Model "${name}": ${error instanceof Error ? error.message : String(error)}`, { model: name, reason });
    }
    let reply;
    try {
      reply = await this.pool.load({ key, path: modelPath, providers, ...(warmup ? { warmup } : {}) });
    } catch (error) {
      throw new ModelInvalidError(`Model "${name}": onnxruntime cannot open the weights: ${error instanceof Error ? error.message : String(error)}`, { model: name, reason: 'ONNX_UNREADABLE' });
    }
    try {
      const config = fileConfig ? servedFromFile(fileConfig, this.options.maxQueueSize) : deriveConfig(name, reply.inputs, reply.outputs, providers, this.options.maxQueueSize);
      checkAgainstGraph(config, reply.inputs, reply.outputs);
    } catch (error) {
      throw new ModelInvalidError(`Model "${name}": ${error instanceof Error ? error.message : String(error)}`, { model: name, reason: 'CONFIG_MISMATCH' });
    } finally {
      await this.pool.unload(key).catch(() => undefined);
    }
  }

  private async loadFrom(entry: RepositoryEntry, version: number, resolve: () => Promise<VersionSource>): Promise<ModelVersion> {
    const model = this.registered(entry);
    let state = model.versions.get(version);
    if (!state) {
      state = newVersionState(entry.name, version);
      model.versions.set(version, state);
    }
    const wasServing = state.status === 'READY';
    if (!wasServing) state.status = 'LOADING';
    const log = this.log.child({ model: entry.name, version });
    const sessionKey = `${entry.name}/${version}/${++this.generation}`;
    try {
      const { modelPath, fileConfig, source, digest, warmupFiles } = await resolve();
      const providers = fileConfig?.execution_providers ?? this.options.providers;
      // The warm-up runs inside the load on every worker: the version turns READY (routable) only after it.
      const warmup = await warmupSamples(fileConfig, warmupFiles ?? (source === 'SEED' ? folderWarmupFiles(entry.directory) : null));
      const reply = await this.pool.load({ key: sessionKey, path: modelPath, providers, ...(warmup ? { warmup } : {}) });
      for (const fallback of reply.fallbacks) {
        log.warn({ provider: fallback.provider, reason: fallback.reason, using: reply.provider }, 'execution provider unavailable; fell back to the next one');
      }
      let config: ServedConfig;
      try {
        config = fileConfig ? servedFromFile(fileConfig, this.options.maxQueueSize) : deriveConfig(entry.name, reply.inputs, reply.outputs, providers, this.options.maxQueueSize);
        checkAgainstGraph(config, reply.inputs, reply.outputs);
      } catch (error) {
        await this.pool.unload(sessionKey).catch(() => undefined);
        throw error;
      }
      for (const warning of config.warnings) log.warn({ warning }, 'model config: a field modelgate does not honour');
      const previous = { batcher: state.batcher, sessionKey: state.sessionKey };
      state.config = config;
      state.provider = reply.provider;
      state.sessionKey = sessionKey;
      state.source = source;
      state.digest = digest;
      state.warmupMs = reply.warmupMs;
      state.warmupRuns = reply.warmupRuns;
      state.batcher = new Batcher(sessionKey, this.pool, {
        maxBatchSize: config.maxBatchSize,
        preferredBatchSizes: config.preferredBatchSizes,
        maxQueueDelayMs: config.maxQueueDelayMs,
        delayWhenIdle: config.delayWhenIdle,
        maxQueueSize: config.maxQueueSize,
      }, this.observerFor(state));
      state.status = 'READY';
      state.reason = null;
      state.loadedAt = new Date();
      this.changed(entry.name);
      this.metrics.provider.set({ model: entry.name, version: String(version), provider: reply.provider }, 1);
      log.info({ provider: reply.provider, warmupMs: Math.round(reply.warmupMs * 10) / 10, warmupRuns: reply.warmupRuns, source: config.source }, 'model ready');
      // Requests already queued on the old batcher finish on the old session, then it goes.
      if (previous.batcher || previous.sessionKey) void this.retire(previous.batcher, previous.sessionKey);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      if (wasServing) {
        state.reason = `reload failed, previous load still serving: ${reason}`;
        log.error({ reason }, 'model reload failed; the previous version keeps serving');
      } else {
        state.status = 'FAILED';
        state.reason = reason;
        log.error({ reason }, 'model failed to load');
      }
    }
    return state;
  }

  private observerFor(state: ModelVersion): BatchObserver {
    const labels = { model: state.model, version: String(state.version) };
    return {
      executed: (batchSize) => {
        state.stats.executions += 1;
        state.stats.batchedItems += batchSize;
        this.metrics.executions.inc(labels);
        this.metrics.batchSize.observe(labels, batchSize);
      },
    };
  }
}

/**
 * A config's model_warmup as the workers run it (undefined: none configured).
 * `files`: where input_data_file files are read (a seed folder's warmup/, or
 * the files a published version was uploaded with); null: there are none.
 */
async function warmupSamples(config: ModelConfig | null, files: WarmupFileReader | null): Promise<WarmupSample[] | undefined> {
  if (!config?.model_warmup || config.model_warmup.length === 0) return undefined;
  const batching = config.max_batch_size > 0;
  const samples: WarmupSample[] = [];
  for (const sample of config.model_warmup) {
    const inputs = [];
    for (const spec of config.inputs) {
      const input = sample.inputs[spec.name]!;
      const dims = input.dims ?? spec.dims;
      const fill = input.zero_data ? 'zero' : input.random_data ? 'random' : 'given';
      if (spec.datatype === 'BYTES') {
        // Strings warm up as empty strings; random bytes or a raw file make no sense for text.
        if (fill !== 'zero') throw new Error(`model_warmup "${sample.name}" input "${spec.name}" is BYTES: give zero_data (empty strings)`);
        inputs.push({ name: spec.name, type: ORT_TYPE.BYTES, dims: batching ? [Math.max(sample.batch_size, 1), ...dims] : dims, fill } as const);
        continue;
      }
      const itemBytes = dims.reduce((a, b) => a * b, 1) * BYTES_PER_ELEMENT[spec.datatype];
      let item: ArrayBuffer | undefined;
      if (input.data) {
        const bytes = encodeNumbers(spec.datatype, input.data);
        item = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
      } else if (input.input_data_file) {
        const file = `warmup/${input.input_data_file}`;
        const bytes = files ? await files(input.input_data_file) : null;
        if (!bytes) {
          throw new WarmupFileError(
            'WARMUP_FILE_MISSING',
            `model_warmup "${sample.name}" input "${spec.name}": input_data_file ${file} was not given (publish it with the version as the load parameter file:${file}, or put it in the seed folder)`,
          );
        }
        if (bytes.length !== itemBytes) {
          throw new WarmupFileError('WARMUP_FILE_SIZE', `model_warmup "${sample.name}" input "${spec.name}": ${file} holds ${bytes.length} bytes; one item of [${dims.join(',')}] ${spec.datatype} takes ${itemBytes}`);
        }
        item = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
      }
      inputs.push({ name: spec.name, type: ORT_TYPE[spec.datatype], dims: batching ? [Math.max(sample.batch_size, 1), ...dims] : dims, fill, ...(item ? { item } : {}) } as const);
    }
    samples.push({ name: sample.name, count: Math.max(sample.count, 1), inputs });
  }
  return samples;
}

/** A version as clients write it ("3"); BAD_USER_INPUT otherwise. */
function versionNumber(version: string): number {
  if (!/^[1-9]\d{0,8}$/.test(version)) throw new BadInputError(`version must be a positive whole number, got "${version}"`, 'version');
  return Number(version);
}

function servedFromFile(config: ModelConfig, defaultMaxQueueSize: number): ServedConfig {
  return {
    name: config.name,
    platform: config.platform,
    description: config.description,
    maxBatchSize: config.max_batch_size,
    preferredBatchSizes: config.dynamic_batching?.preferred_batch_size ?? [],
    maxQueueDelayMs: (config.dynamic_batching?.max_queue_delay_microseconds ?? 0) / 1000,
    delayWhenIdle: config.dynamic_batching?.delay_when_idle ?? false,
    maxQueueSize: config.dynamic_batching?.max_queue_size ?? defaultMaxQueueSize,
    defaultTimeoutMs: config.dynamic_batching?.default_timeout_ms ?? null,
    inputs: config.inputs.map((t) => ({ name: t.name, datatype: t.datatype, dims: t.dims })),
    outputs: config.outputs.map((t) => ({ name: t.name, datatype: t.datatype, dims: t.dims })),
    outputKind: config.output_kind,
    preprocessing: config.preprocessing ?? null,
    labels: config.labels ?? [],
    cost: config.cost,
    executionProviders: config.execution_providers ?? [],
    source: 'CONFIG',
    responseCache: config.response_cache?.enable ?? false,
    warnings: config.warnings ?? [],
  };
}

function specFromGraph(meta: TensorMetadata, batching: boolean, what: string): TensorSpec {
  const datatype = datatypeFromOrt(meta.type);
  if (!datatype) throw new Error(`${what} "${meta.name}" has type ${meta.type}, which modelgate does not serve`);
  return { name: meta.name, datatype, dims: batching ? meta.shape.slice(1) : meta.shape };
}

/** A config for a bare model.onnx, from the graph's own input/output metadata. */
export function deriveConfig(
  name: string,
  inputs: TensorMetadata[],
  outputs: TensorMetadata[],
  providers: ExecutionProviderName[],
  maxQueueSize: number,
): ServedConfig {
  // Batch only when every input and output has a dynamic first axis.
  const batching = [...inputs, ...outputs].every((t) => t.shape.length > 0 && t.shape[0] === -1);
  return {
    name,
    platform: 'onnxruntime_onnx',
    description: 'Served without config.json: inputs and outputs read from the ONNX graph',
    maxBatchSize: batching ? DERIVED_MAX_BATCH_SIZE : 0,
    preferredBatchSizes: [],
    maxQueueDelayMs: batching ? DERIVED_QUEUE_DELAY_MS : 0,
    delayWhenIdle: false,
    maxQueueSize,
    defaultTimeoutMs: null,
    inputs: inputs.map((m) => specFromGraph(m, batching, 'input')),
    outputs: outputs.map((m) => specFromGraph(m, batching, 'output')),
    outputKind: 'raw',
    preprocessing: null,
    labels: [],
    cost: 1,
    executionProviders: providers,
    source: 'DERIVED',
    responseCache: false,
    warnings: [],
  };
}

/** A config.json that disagrees with its graph fails the load with a reason naming the tensor. */
function checkAgainstGraph(config: ServedConfig, inputs: TensorMetadata[], outputs: TensorMetadata[]): void {
  const check = (specs: TensorSpec[], graph: TensorMetadata[], what: 'input' | 'output') => {
    for (const spec of specs) {
      const meta = graph.find((g) => g.name === spec.name);
      if (!meta) throw new Error(`config ${what} "${spec.name}" is not in the graph (graph has ${graph.map((g) => g.name).join(', ')})`);
      const type = datatypeFromOrt(meta.type);
      if (type !== spec.datatype) throw new Error(`config ${what} "${spec.name}" is ${spec.datatype} but the graph has ${meta.type}`);
      if (config.maxBatchSize > 0 && meta.shape.length > 0 && meta.shape[0] !== -1) {
        throw new Error(`config ${what} "${spec.name}": max_batch_size ${config.maxBatchSize} needs a dynamic first axis, but the graph's is fixed at ${meta.shape[0]} (set max_batch_size 0 and give the full dims)`);
      }
      const graphDims = config.maxBatchSize > 0 ? meta.shape.slice(1) : meta.shape;
      if (meta.shape.length > 0 && graphDims.length !== spec.dims.length) {
        throw new Error(`config ${what} "${spec.name}" has dims [${spec.dims.join(',')}] but the graph has [${meta.shape.join(',')}]`);
      }
      graphDims.forEach((d, i) => {
        const want = spec.dims[i]!;
        if (d !== -1 && want !== -1 && d !== want) {
          throw new Error(`config ${what} "${spec.name}" dim ${i} is ${want} but the graph has ${d}`);
        }
      });
    }
    if (what === 'input') {
      const missing = graph.filter((g) => !specs.some((s) => s.name === g.name));
      if (missing.length > 0) throw new Error(`graph input ${missing.map((m) => `"${m.name}"`).join(', ')} is missing from config.json`);
    }
  };
  check(config.inputs, inputs, 'input');
  check(config.outputs, outputs, 'output');
}

/** A version the registry has not loaded yet: LOADING, no session, no figures. */
function newVersionState(model: string, version: number): ModelVersion {
  return {
    model,
    version,
    status: 'LOADING',
    reason: null,
    provider: null,
    config: null,
    batcher: null,
    stats: { requests: 0, failures: 0, inferences: 0, executions: 0, batchedItems: 0, queueMsTotal: 0, computeMsTotal: 0 },
    loadedAt: null,
    sessionKey: null,
    source: 'SEED',
    digest: null,
    warmupMs: null,
    warmupRuns: 0,
    shadowStats: emptyShadowStats(),
  };
}
