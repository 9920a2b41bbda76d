/**
 * `modelgate models`: the fleet-wide model catalog of a running gateway
 * (issue #23): publish a Triton-layout folder or one .onnx file, list,
 * split traffic, unload. Gateway only (a publish is validated and applied by
 * the gateways); the key in MODELGATE_ADMIN_KEY is an admin key, or a
 * `models:manage` key for its tenant's private models (`<tenant id>.<name>`).
 * There is no `models rollback`: the catalog keeps no previous weights to
 * restore yet (README "Model lifecycle").
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import type { RemoteAdminClient, ShadowVersionRecord } from './remote-client';
import { UsageError } from './exit';
import { JSON_HELP, table } from './format';

/** What these commands need of the CLI's context (program.ts). */
export interface ModelsContext {
  remote<T>(command: string, why: string, work: (client: RemoteAdminClient) => Promise<T>): Promise<T>;
  emit(json: boolean | undefined, value: unknown, human: string): void;
}

const NEEDS_GATEWAY = 'models live in the fleet catalog, which the gateways validate, store and apply on every replica';
const VERSION = /^[1-9]\d{0,8}$/;

/** What `models publish` sends: one version's file, or a folder's config and versions. */
export type PublishPlan =
  | { kind: 'file'; name: string; version: number; bytes: Buffer }
  | { kind: 'folder'; name: string; config: string | null; configFile: string | null; versions: Map<number, Buffer> };

/**
 * Reads a publish source: a `.onnx` file (name: the file's, without
 * `.onnx`; version: --model-version, else 1) or a Triton-layout folder
 * (`config.json` or `config.pbtxt`, and `<version>/model.onnx` folders;
 * name: the folder's).
 */
export function publishPlan(source: string, opts: { name?: string; version?: string }): PublishPlan {
  let stat;
  try {
    stat = statSync(source);
  } catch {
    throw new UsageError(`${source}: no such file or folder`);
  }
  if (opts.version !== undefined && !VERSION.test(opts.version)) throw new UsageError(`--model-version must be a positive whole number (got "${opts.version}")`);
  if (stat.isFile()) {
    if (!source.endsWith('.onnx')) throw new UsageError(`${source}: publish a .onnx file or a model folder (config.json and <version>/model.onnx)`);
    return { kind: 'file', name: opts.name ?? path.basename(source, '.onnx'), version: Number(opts.version ?? '1'), bytes: readFileSync(source) };
  }
  if (opts.version !== undefined) throw new UsageError('--model-version is for one .onnx file; a folder publishes its numbered version folders');
  const versions = new Map<number, Buffer>();
  for (const entry of readdirSync(source, { withFileTypes: true })) {
    if (!entry.isDirectory() || !VERSION.test(entry.name)) continue;
    const file = path.join(source, entry.name, 'model.onnx');
    try {
      versions.set(Number(entry.name), readFileSync(file));
    } catch {
      throw new UsageError(`${file}: every version folder needs its model.onnx`);
    }
  }
  if (versions.size === 0) throw new UsageError(`${source}: no version folders (<version>/model.onnx) to publish`);
  const configFile = ['config.json', 'config.pbtxt'].map((f) => path.join(source, f)).find((f) => {
    try {
      return statSync(f).isFile();
    } catch {
      return false;
    }
  });
  return {
    kind: 'folder',
    name: opts.name ?? path.basename(path.resolve(source)),
    config: configFile ? readFileSync(configFile, 'utf8') : null,
    configFile: configFile ?? null,
    versions,
  };
}

/** `1=90 2=10` as a traffic split. */
export function trafficWeights(pairs: string[]): { version: string; percent: number }[] {
  return pairs.map((pair) => {
    const m = /^([1-9]\d{0,8})=(\d{1,3})$/.exec(pair);
    if (!m?.[1] || !m[2]) throw new UsageError(`a split is <version>=<percent> pairs such as 1=90 2=10 (got "${pair}")`);
    return { version: m[1], percent: Number(m[2]) };
  });
}

/** Why over 80 lines: one commander chain per `models` subcommand, each a few declarative lines. */
export function addModelCommands(program: Command, ctx: ModelsContext): void {
  const models = program
    .command('models')
    .description("The fleet-wide model catalog through a gateway: publish, list, split traffic, unload (an admin key, or a models:manage key for its tenant's private models)");

  models
    .command('publish')
    .description(
      'Publish a model on every replica: a Triton-layout folder (config.json or config.pbtxt, and <version>/model.onnx; the versions not in the folder are unloaded) ' +
        'or one .onnx file (streamed upload of one version, other versions untouched)',
    )
    .argument('<source>', 'a model folder or a .onnx file')
    .option('--name <name>', "the model's name (default: the folder's, or the file's without .onnx); a private model is <tenant id>.<name>")
    .option('--model-version <n>', 'for a .onnx file: the version it becomes (default 1)')
    .option('--json', JSON_HELP)
    .action(async (source: string, opts: { name?: string; modelVersion?: string; json?: boolean }) => {
      const plan = publishPlan(source, { ...(opts.name !== undefined ? { name: opts.name } : {}), ...(opts.modelVersion !== undefined ? { version: opts.modelVersion } : {}) });
      const result = await ctx.remote('models publish', NEEDS_GATEWAY, async (c) => {
        if (plan.kind === 'file') return { ...(await c.uploadModelVersion(plan.name, plan.version, plan.bytes)), versions: [String(plan.version)] };
        if (plan.config === null) {
          // No config: each version is uploaded on its own, its contract derived from the graph.
          const uploaded = [];
          for (const [version, bytes] of [...plan.versions].sort((a, b) => a[0] - b[0])) uploaded.push(await c.uploadModelVersion(plan.name, version, bytes));
          return { name: plan.name, versions: uploaded.map((u) => u.version), digests: uploaded.map((u) => u.digest) };
        }
        await c.publishModel(plan.name, plan.config, plan.versions);
        return { name: plan.name, versions: [...plan.versions.keys()].sort((a, b) => a - b).map(String), config: plan.configFile };
      });
      ctx.emit(opts.json, result, `published ${result.name} version${result.versions.length > 1 ? 's' : ''} ${result.versions.join(', ')}; served by this gateway, the other replicas follow`);
    });

  models
    .command('list')
    .description('Every model the key may see, with each version\'s state on the gateway that answers')
    .option('--json', JSON_HELP)
    .action(async (opts: { json?: boolean }) => {
      const list = await ctx.remote('models list', NEEDS_GATEWAY, (c) => c.listModels());
      ctx.emit(
        opts.json,
        list,
        table(list.map((m) => ({ name: m.name, serving: m.status === 'READY' ? m.version : '-', versions: m.versions.map((v) => `${v.version}:${v.status}`).join(' ') }))),
      );
    });

  models
    .command('traffic')
    .description('Split the requests that name no version across versions, on every replica: <version>=<percent> pairs summing to 100 (unlisted versions get none)')
    .argument('<name>', 'the model')
    .argument('[split...]', 'pairs such as 1=90 2=10')
    .option('--clear', 'remove the split (the latest READY version serves again)')
    .option('--json', JSON_HELP)
    .action(async (name: string, split: string[], opts: { clear?: boolean; json?: boolean }) => {
      if (opts.clear && split.length > 0) throw new UsageError('give a split or --clear, not both');
      if (!opts.clear && split.length === 0) throw new UsageError('give a split such as 1=90 2=10, or --clear');
      const weights = trafficWeights(split);
      const rows = await ctx.remote('models traffic', NEEDS_GATEWAY, (c) => c.setModelTraffic(name, weights));
      ctx.emit(opts.json, rows, opts.clear ? `${name}: no split` : `${name}: ${rows.map((r) => `${r.version}=${r.trafficPercent ?? 0}`).join(' ')}`);
    });

  models
    .command('unload')
    .description('Unload a model (every version, or one) on every replica; queued and running requests finish first')
    .argument('<name>', 'the model')
    .option('--model-version <n>', 'only this version')
    .option('--json', JSON_HELP)
    .action(async (name: string, opts: { modelVersion?: string; json?: boolean }) => {
      if (opts.modelVersion !== undefined && !VERSION.test(opts.modelVersion)) throw new UsageError(`--model-version must be a positive whole number (got "${opts.modelVersion}")`);
      const model = await ctx.remote('models unload', NEEDS_GATEWAY, (c) => c.unloadModel(name, opts.modelVersion ?? null));
      ctx.emit(opts.json, model, `${model.name}: ${model.versions.map((v) => `${v.version}:${v.status}`).join(' ')}`);
    });

  models
    .command('shadow')
    .description('Also run a share of the model\'s served requests on a candidate version, on every replica (off the request path, never billed, skipped first under load); 0 clears it. Agreement with the serving version: models shadow output, modelVersions, /metrics')
    .argument('<name>', 'the model')
    .argument('<version>', 'the candidate version')
    .argument('<percent>', 'share of served requests, 0-100 (0 clears)')
    .option('--json', JSON_HELP)
    .action(async (name: string, version: string, percent: string, opts: { json?: boolean }) => {
      if (!VERSION.test(version)) throw new UsageError(`<version> must be a positive whole number (got "${version}")`);
      if (!/^\d{1,3}$/.test(percent) || Number(percent) > 100) throw new UsageError(`<percent> must be a whole number from 0 to 100 (got "${percent}")`);
      const rows = await ctx.remote('models shadow', NEEDS_GATEWAY, (c) => c.setModelShadow(name, version, Number(percent)));
      ctx.emit(opts.json, rows, versionTable(rows));
    });

  models
    .command('rollback')
    .description('Restore the model\'s serving state from before its last serving change (versions loaded, weights, traffic split), on every replica; a second rollback undoes the first')
    .argument('<name>', 'the model')
    .option('--json', JSON_HELP)
    .action(async (name: string, opts: { json?: boolean }) => {
      const rows = await ctx.remote('models rollback', NEEDS_GATEWAY, (c) => c.rollbackModel(name));
      ctx.emit(opts.json, rows, `${name} rolled back\n${versionTable(rows)}`);
    });
}

/** Versions with their serving and shadow figures, one row each. */
function versionTable(rows: ShadowVersionRecord[]): string {
  return table(
    rows.map((r) => ({
      version: r.version,
      desired: r.desiredState,
      here: r.replicaStatus,
      traffic: r.trafficPercent === null ? '-' : `${r.trafficPercent}%`,
      shadow: r.shadowPercent === null ? '-' : `${r.shadowPercent}%`,
      'shadow runs': String(r.shadowRuns),
      'top-1 agreement': r.shadowTop1Agreement === null ? '-' : r.shadowTop1Agreement.toFixed(4),
      'max abs diff': r.shadowMaxAbsDifference === null ? '-' : r.shadowMaxAbsDifference.toExponential(2),
    })),
  );
}
