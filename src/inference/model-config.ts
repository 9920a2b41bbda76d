/**
 * The model repository's config.json format (Triton-style, see models/README.md)
 * and its validation. Errors name the file and the field, so an operator can
 * fix a broken model without reading code. (First piece of the inference
 * engine, issue #4; the engine itself is not built yet.)
 */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { EXECUTION_PROVIDER_NAMES } from '../config';

export const DATATYPES = ['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64', 'BYTES'] as const;
export type Datatype = (typeof DATATYPES)[number];
/** Fixed-size elements; BYTES (onnx tensor(string)) travels length-prefixed, each element a 4-byte little-endian length then its UTF-8 bytes. */
export type NumericDatatype = Exclude<Datatype, 'BYTES'>;

const tensorSpec = z
  .object({
    name: z.string().min(1),
    datatype: z.enum(DATATYPES),
    // Without the batch axis; -1 marks a variable dimension.
    dims: z.array(z.number().int().min(-1).refine((d) => d !== 0, 'dimension 0 is not allowed')).min(0),
  })
  .strict();

/** Most runs one warm-up sample may ask for (Triton's `count`): a bound on how long a load can be held. */
export const WARMUP_MAX_COUNT = 10_000;
/** An input_data_file: a plain name in the model's `warmup/` folder (no path, not `.` or `..`). */
export const WARMUP_FILE_NAME = /^(?!\.{1,2}$)[A-Za-z0-9_.-]{1,128}$/;

/**
 * One input of a warm-up sample (Triton's ModelWarmup.Input): its data is
 * zeros, random values, a raw little-endian file in the model folder's
 * `warmup/` (Triton's `input_data_file`: a seed folder's file, or one
 * uploaded with a published version as `file:warmup/<name>`), or modelgate's
 * own inline `data` (values of one item, any model).
 */
const warmupInput = z
  .object({
    // Triton writes TYPE_FP32; modelgate's own form FP32. Absent: the config input's datatype.
    // Triton's TYPE_STRING is the protocol's BYTES.
    data_type: z.string().transform((t) => (t === 'TYPE_STRING' ? 'BYTES' : t.replace(/^TYPE_/, ''))).pipe(z.enum(DATATYPES)).optional(),
    // Without the batch axis, like the config's; absent: the config input's dims.
    dims: z.array(z.number().int().min(1)).optional(),
    zero_data: z.boolean().optional(),
    random_data: z.boolean().optional(),
    input_data_file: z.string().regex(WARMUP_FILE_NAME, 'a file name in the model folder\'s warmup/ (no path)').optional(),
    data: z.array(z.number()).optional(),
  })
  .strict()
  .refine((i) => [i.zero_data === true, i.random_data === true, i.input_data_file !== undefined, i.data !== undefined].filter(Boolean).length === 1, {
    message: 'give exactly one of zero_data, random_data, input_data_file or data',
  });

/** Triton's `model_warmup` entry: `count` runs of a `batch_size`-item request before the version turns READY. */
const warmupSample = z
  .object({
    name: z.string().default('warmup'),
    batch_size: z.number().int().min(0).max(65536).default(1),
    inputs: z.record(warmupInput),
    // Triton's 0 (unset) is one run.
    count: z.number().int().min(0).max(WARMUP_MAX_COUNT).default(1),
  })
  .strict();

export type WarmupSampleConfig = z.infer<typeof warmupSample>;

/** Model names (config.json `name`, folder names, and what clients may ask for). */
export const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export const modelConfigSchema = z
  .object({
    name: z.string().regex(MODEL_NAME, 'letters, digits, _ . - (at most 128)'),
    platform: z.literal('onnxruntime_onnx'),
    description: z.string().default(''),
    max_batch_size: z.number().int().min(0).max(65536),
    dynamic_batching: z
      .object({
        max_queue_delay_microseconds: z.number().int().min(0).max(10_000_000).default(0),
        preferred_batch_size: z.array(z.number().int().min(1)).default([]),
        max_queue_size: z.number().int().min(1).optional(),
        default_timeout_ms: z.number().int().min(1).optional(),
        // modelgate's own: true keeps Triton's delayed batching exactly (a request waits up to
        // the delay for company even while the model is idle); false (default) runs it at once.
        delay_when_idle: z.boolean().default(false),
      })
      .strict()
      .optional(),
    inputs: z.array(tensorSpec).min(1),
    outputs: z.array(tensorSpec).min(1),
    output_kind: z.enum(['probabilities', 'logits', 'raw']).default('raw'),
    preprocessing: z
      .object({
        layout: z.enum(['NCHW', 'NHWC']),
        color: z.enum(['grey', 'rgb']),
        width: z.number().int().min(1),
        height: z.number().int().min(1),
        scale: z.number().positive(),
        invert: z.boolean().default(false),
      })
      .strict()
      .optional(),
    labels: z.array(z.string()).optional(),
    cost: z.number().positive().default(1),
    execution_providers: z.array(z.enum(EXECUTION_PROVIDER_NAMES)).min(1).optional(),
    card: z.record(z.unknown()).optional(),
    // Triton's response_cache: answers of this (deterministic) model may be served from the
    // gateway's cache (RESPONSE_CACHE_MAX_BYTES), per tenant and model version.
    response_cache: z.object({ enable: z.boolean().default(false) }).strict().optional(),
    // Triton's model_warmup: samples run on every worker before a version turns READY
    // (absent: one run of zeros, as before).
    model_warmup: z.array(warmupSample).max(16).optional(),
    // Set by the gateway, never by a caller (parseLoadConfig refuses it): the input_data_file files a
    // published version was uploaded with (`file:warmup/<name>`), by name → SHA-256 in the weight store.
    warmup_files: z.record(z.string().regex(WARMUP_FILE_NAME), z.string().regex(/^[0-9a-f]{64}$/)).optional(),
    // Filled by the readers of Triton's forms (config.pbtxt, a load's Triton JSON): each field
    // set there that modelgate does not honour, or a config.pbtxt that config.json overrides.
    // Shown on the model's config (OIP /config, gRPC ModelConfig) and logged at load.
    warnings: z.array(z.string()).optional(),
  })
  .strict()
  .superRefine((config, ctx) => {
    for (const size of config.dynamic_batching?.preferred_batch_size ?? []) {
      if (config.max_batch_size > 0 && size > config.max_batch_size) {
        ctx.addIssue({ code: 'custom', path: ['dynamic_batching', 'preferred_batch_size'], message: `${size} exceeds max_batch_size ${config.max_batch_size}` });
      }
    }
    config.model_warmup?.forEach((sample, s) => checkWarmup(config, sample, (path, message) => ctx.addIssue({ code: 'custom', path: ['model_warmup', s, ...path], message })));
    const names = [...config.inputs, ...config.outputs].map((t) => t.name);
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup) ctx.addIssue({ code: 'custom', path: ['inputs'], message: `tensor name "${dup}" is used twice` });
  });

export type ModelConfig = z.infer<typeof modelConfigSchema>;

/** A warm-up sample must feed every config input with its type and dims, and fit the batch bound. */
function checkWarmup(
  config: { max_batch_size: number; inputs: { name: string; datatype: Datatype; dims: number[] }[] },
  sample: WarmupSampleConfig,
  issue: (path: (string | number)[], message: string) => void,
): void {
  const batching = config.max_batch_size > 0;
  if (batching && sample.batch_size > config.max_batch_size) issue(['batch_size'], `${sample.batch_size} exceeds max_batch_size ${config.max_batch_size}`);
  if (!batching && sample.batch_size > 1) issue(['batch_size'], 'a model without batching (max_batch_size 0) warms up with batch_size 1');
  for (const name of Object.keys(sample.inputs)) {
    if (!config.inputs.some((i) => i.name === name)) issue(['inputs', name], `the model has no input "${name}"`);
  }
  for (const spec of config.inputs) {
    const input = sample.inputs[spec.name];
    if (!input) {
      issue(['inputs'], `input "${spec.name}" is missing`);
      continue;
    }
    if (input.data_type !== undefined && input.data_type !== spec.datatype) issue(['inputs', spec.name, 'data_type'], `is ${input.data_type} but the input is ${spec.datatype}`);
    // Strings warm up as empty strings; random bytes, a raw file or numbers are no text.
    if (spec.datatype === 'BYTES' && input.zero_data !== true) issue(['inputs', spec.name], 'a BYTES input warms up with zero_data (empty strings)');
    const dims = input.dims ?? spec.dims;
    if (dims.length !== spec.dims.length || dims.some((d, k) => spec.dims[k] !== -1 && spec.dims[k] !== d) || dims.some((d) => d < 1)) {
      issue(['inputs', spec.name, 'dims'], `[${dims.join(',')}] does not fit the input's dims [${spec.dims.join(',')}] (give dims for variable ones)`);
      continue;
    }
    const perItem = dims.reduce((a, b) => a * b, 1);
    if (input.data !== undefined && input.data.length !== perItem) issue(['inputs', spec.name, 'data'], `has ${input.data.length} values; dims [${dims.join(',')}] take ${perItem} (one item, repeated over batch_size)`);
  }
}

export class ModelConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`${file}: ${problems.join('; ')}`);
    this.name = 'ModelConfigError';
  }
}

/** Parses a config.json text; throws ModelConfigError naming the file and each bad field. */
export function parseModelConfig(file: string, text: string, directoryName?: string): ModelConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new ModelConfigError(file, [`not valid JSON (${error instanceof Error ? error.message : String(error)})`]);
  }
  const parsed = modelConfigSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ModelConfigError(
      file,
      parsed.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`),
    );
  }
  if (directoryName !== undefined && parsed.data.name !== directoryName) {
    throw new ModelConfigError(file, [`name: "${parsed.data.name}" must match its folder "${directoryName}"`]);
  }
  return parsed.data;
}

function isFile(file: string): Promise<boolean> {
  return stat(file).then((s) => s.isFile(), () => false);
}

export interface RepositoryEntry {
  name: string;
  directory: string;
  /** Numeric version folders holding a model.onnx, ascending. */
  versions: number[];
  /** null when the folder has no config.json (the engine derives one from the graph). */
  configFile: string | null;
  /** Triton's config.pbtxt beside it, or null: read when there is no config.json (triton-config.ts). */
  pbtxtFile: string | null;
}

/**
 * Lists the models in a repository: every folder with a config.json, a
 * config.pbtxt or at least one `<n>/model.onnx`. Other folders (training code, caches) are skipped.
 */
export async function scanRepository(root: string): Promise<RepositoryEntry[]> {
  const entries: RepositoryEntry[] = [];
  for (const dirent of await readdir(root, { withFileTypes: true })) {
    if (!dirent.isDirectory() || dirent.name.startsWith('.')) continue;
    const directory = path.join(root, dirent.name);
    const versions: number[] = [];
    for (const child of await readdir(directory, { withFileTypes: true })) {
      if (child.isDirectory() && /^[1-9]\d*$/.test(child.name)) {
        const onnx = path.join(directory, child.name, 'model.onnx');
        if (await isFile(onnx)) versions.push(Number(child.name));
      }
    }
    const configPath = path.join(directory, 'config.json');
    const hasConfig = await isFile(configPath);
    const pbtxtPath = path.join(directory, 'config.pbtxt');
    const hasPbtxt = await isFile(pbtxtPath);
    if (!hasConfig && !hasPbtxt && versions.length === 0) continue;
    entries.push({ name: dirent.name, directory, versions: versions.sort((a, b) => a - b), configFile: hasConfig ? configPath : null, pbtxtFile: hasPbtxt ? pbtxtPath : null });
  }
  return entries.sort((a, b) => a.name.localeCompare(b.name));
}
