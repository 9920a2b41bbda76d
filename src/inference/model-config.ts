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

export const DATATYPES = ['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64'] as const;
export type Datatype = (typeof DATATYPES)[number];

const tensorSpec = z
  .object({
    name: z.string().min(1),
    datatype: z.enum(DATATYPES),
    // Without the batch axis; -1 marks a variable dimension.
    dims: z.array(z.number().int().min(-1).refine((d) => d !== 0, 'dimension 0 is not allowed')).min(0),
  })
  .strict();

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
    const names = [...config.inputs, ...config.outputs].map((t) => t.name);
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup) ctx.addIssue({ code: 'custom', path: ['inputs'], message: `tensor name "${dup}" is used twice` });
  });

export type ModelConfig = z.infer<typeof modelConfigSchema>;

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
