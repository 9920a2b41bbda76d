/**
 * A model config as a Triton load call carries it (issue #23): Triton's JSON
 * form (`backend`/`platform`, `input`/`output` with `data_type: TYPE_FP32`
 * and `dims`, `max_batch_size`, `dynamic_batching`) or modelgate's own
 * config.json form, turned into modelgate's validated ModelConfig; and
 * Triton's `config.pbtxt` (issue #24), parsed into the JSON form first. Each
 * field modelgate does not honour is kept as a warning on the config.
 */
import { readFile } from 'node:fs/promises';
import { ModelInvalidError } from '../errors';
import { DATATYPES, ModelConfigError, modelConfigSchema, parseModelConfig, type Datatype, type ModelConfig, type RepositoryEntry } from './model-config';
import { parseTritonPbtxt, TextFormatError } from './pbtxt';

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function invalid(model: string, message: string): ModelInvalidError {
  return new ModelInvalidError(`Model "${model}": config ${message}`, { model, reason: 'CONFIG_INVALID' });
}

/** Triton's config name of a datatype: TYPE_FP32, and TYPE_STRING for BYTES. */
export function tritonTypeName(datatype: string): string {
  return datatype === 'BYTES' ? 'TYPE_STRING' : `TYPE_${datatype}`;
}

function tritonDatatype(model: string, value: unknown): Datatype {
  const name = typeof value === 'string' ? value.replace(/^TYPE_/, '') : '';
  // Triton's config names BYTES TYPE_STRING (the protocol's datatype is BYTES); TYPE_BYTES is not a Triton name.
  const mapped = name === 'STRING' ? 'BYTES' : name === 'BYTES' ? '' : name;
  if (!(DATATYPES as readonly string[]).includes(mapped)) throw invalid(model, `data_type ${JSON.stringify(value)} is not one modelgate serves (${DATATYPES.map(tritonTypeName).join(', ')})`);
  return mapped as Datatype;
}

function tritonTensors(model: string, list: unknown, what: string): { name: string; datatype: Datatype; dims: number[] }[] {
  if (list === undefined) return [];
  if (!Array.isArray(list)) throw invalid(model, `${what} must be a list`);
  return list.map((t, i) => {
    if (!isObject(t) || typeof t['name'] !== 'string') throw invalid(model, `${what}[${i}] needs a name`);
    const dims = Array.isArray(t['dims']) ? t['dims'].map((d) => Number(d)) : [];
    return { name: t['name'], datatype: tritonDatatype(model, t['data_type']), dims };
  });
}

/**
 * The Triton config fields modelgate serves with (true: the whole value;
 * an object: those of its fields). Any other field set to a non-default
 * value is not honoured and becomes a warning naming it.
 */
type Honoured = { [field: string]: true | Honoured };
const TENSOR: Honoured = { name: true, data_type: true, dims: true };
const HONOURED: Honoured = {
  name: true,
  platform: true,
  backend: true,
  max_batch_size: true,
  input: TENSOR,
  output: TENSOR,
  dynamic_batching: { max_queue_delay_microseconds: true, preferred_batch_size: true, default_queue_policy: { max_queue_size: true } },
  response_cache: { enable: true },
  model_warmup: true,
};

/** proto3: a field at its default value is the same as one not set. */
function isDefault(value: unknown): boolean {
  if (value === undefined || value === null || value === '' || value === 0 || value === '0' || value === false) return true;
  if (Array.isArray(value)) return value.length === 0;
  if (isObject(value)) return Object.values(value).every(isDefault);
  return false;
}

/** The dotted paths of every field in `raw` that `honoured` does not list (`input[0].reshape`). */
function unhonouredFields(raw: Json, honoured: Honoured, prefix = ''): string[] {
  const found: string[] = [];
  for (const [key, value] of Object.entries(raw)) {
    if (isDefault(value)) continue;
    const rule = honoured[key];
    const here = `${prefix}${key}`;
    if (rule === undefined) found.push(here);
    else if (rule !== true && Array.isArray(value)) {
      value.forEach((item, i) => {
        if (isObject(item)) found.push(...unhonouredFields(item, rule, `${here}[${i}].`));
      });
    } else if (rule !== true && isObject(value)) found.push(...unhonouredFields(value, rule, `${here}.`));
  }
  return found;
}

/** One warning per field a Triton config sets that modelgate does not honour. */
export function tritonWarnings(raw: Json): string[] {
  return unhonouredFields(raw, HONOURED).map((field) => `${field}: not honoured by modelgate (ignored)`);
}

/** Triton's JSON model config → modelgate's config.json form (unvalidated), with a warning per field not honoured. */
function fromTriton(model: string, raw: Json): Json {
  const backend = raw['backend'] || raw['platform'] || undefined;
  if (backend !== undefined && backend !== 'onnxruntime' && backend !== 'onnxruntime_onnx') {
    throw invalid(model, `backend/platform ${JSON.stringify(backend)}: modelgate serves ONNX models only (onnxruntime)`);
  }
  const out: Json = {
    name: model,
    platform: 'onnxruntime_onnx',
    max_batch_size: Number(raw['max_batch_size'] ?? 0),
    inputs: tritonTensors(model, raw['input'], 'input'),
    outputs: tritonTensors(model, raw['output'], 'output'),
  };
  const batching = raw['dynamic_batching'];
  if (isObject(batching)) {
    const db: Json = {};
    if (batching['max_queue_delay_microseconds'] !== undefined) db['max_queue_delay_microseconds'] = Number(batching['max_queue_delay_microseconds']);
    if (Array.isArray(batching['preferred_batch_size'])) db['preferred_batch_size'] = batching['preferred_batch_size'].map(Number);
    const policy = batching['default_queue_policy'];
    // Triton's 0 is "no bound": modelgate's own bound (INFERENCE_MAX_QUEUE_SIZE) stays.
    if (isObject(policy) && Number(policy['max_queue_size'] ?? 0) > 0) db['max_queue_size'] = Number(policy['max_queue_size']);
    out['dynamic_batching'] = db;
  }
  const cache = raw['response_cache'];
  if (isObject(cache) && cache['enable'] === true) out['response_cache'] = { enable: true };
  // Triton's shape is modelgate's own (ModelWarmup: name, batch_size, inputs map, count); proto3 leaves unset fields out.
  if (Array.isArray(raw['model_warmup']) && raw['model_warmup'].length > 0) out['model_warmup'] = raw['model_warmup'].map(tritonWarmup);
  const warnings = tritonWarnings(raw);
  if (warnings.length > 0) out['warnings'] = warnings;
  return out;
}

/** One ModelWarmup entry of Triton's form: int64 values may be decimal strings (the JSON mapping of proto3). */
function tritonWarmup(entry: unknown): unknown {
  if (!isObject(entry)) return entry;
  const inputs: Json = {};
  for (const [name, input] of Object.entries(isObject(entry['inputs']) ? entry['inputs'] : {})) {
    inputs[name] = isObject(input) && Array.isArray(input['dims']) ? { ...input, dims: input['dims'].map(Number) } : input;
  }
  const out: Json = { ...entry, inputs };
  if (entry['batch_size'] !== undefined) out['batch_size'] = Number(entry['batch_size']);
  if (entry['count'] !== undefined) out['count'] = Number(entry['count']);
  return out;
}

/** Validates a config in modelgate's config.json form (built from Triton's) for model `model`. */
function validated(model: string, candidate: Json): ModelConfig {
  const parsed = modelConfigSchema.safeParse(candidate);
  if (!parsed.success) {
    throw invalid(model, parsed.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('; '));
  }
  return parsed.data;
}

/**
 * A Triton `config.pbtxt` of model `model` (its folder's name), read by the
 * text-format parser against Triton's model_config.proto: the fields
 * modelgate honours become its ModelConfig, every other field set is in
 * `warnings`. MODEL_INVALID (reason CONFIG_INVALID) names what is wrong.
 */
export function parsePbtxtConfig(model: string, text: string): ModelConfig {
  let raw: Json;
  try {
    raw = parseTritonPbtxt(text);
  } catch (error) {
    if (error instanceof TextFormatError) throw invalid(model, `config.pbtxt ${error.message}`);
    throw error;
  }
  if (raw['name'] !== undefined && raw['name'] !== '' && raw['name'] !== model) throw invalid(model, `name "${String(raw['name'])}" must be its folder's name`);
  return validated(model, fromTriton(model, raw));
}

/**
 * Parses the `config` parameter of a load call for model `model`: JSON text
 * (or an object) in either form. MODEL_INVALID (reason CONFIG_INVALID) names
 * what is wrong.
 */
export function parseLoadConfig(model: string, config: unknown): ModelConfig {
  let raw: unknown = config;
  if (typeof config === 'string') {
    try {
      raw = JSON.parse(config);
    } catch {
      throw invalid(model, 'is not valid JSON');
    }
  }
  if (!isObject(raw)) throw invalid(model, 'must be a JSON object');
  if (raw['warmup_files'] !== undefined) throw invalid(model, 'warmup_files is set by the gateway: send each input_data_file as the load parameter file:warmup/<name>');
  if (raw['name'] !== undefined && raw['name'] !== '' && raw['name'] !== model) throw invalid(model, `name "${String(raw['name'])}" must be the model's name`);
  const modelgateForm = Array.isArray(raw['inputs']) || Array.isArray(raw['outputs']);
  return validated(model, modelgateForm ? { ...raw, name: model } : fromTriton(model, raw));
}

/**
 * A repository folder's config: config.json (modelgate's form) where there
 * is one, else Triton's config.pbtxt, else null (derived from the graph).
 * Where both exist config.json wins and the config carries a warning saying
 * config.pbtxt was not read. Throws ModelConfigError naming the file.
 */
export async function readModelConfig(entry: RepositoryEntry): Promise<ModelConfig | null> {
  if (entry.configFile) {
    const config = parseModelConfig(entry.configFile, await readFile(entry.configFile, 'utf8'), entry.name);
    if (!entry.pbtxtFile) return config;
    return { ...config, warnings: [...(config.warnings ?? []), 'config.pbtxt: not read (config.json wins where both exist)'] };
  }
  if (!entry.pbtxtFile) return null;
  const text = await readFile(entry.pbtxtFile, 'utf8');
  try {
    return parsePbtxtConfig(entry.name, text);
  } catch (error) {
    if (error instanceof ModelInvalidError) throw new ModelConfigError(entry.pbtxtFile, [error.message]);
    throw error;
  }
}
