/**
 * A model config as a Triton load call carries it (issue #23): Triton's JSON
 * form (`backend`/`platform`, `input`/`output` with `data_type: TYPE_FP32`
 * and `dims`, `max_batch_size`, `dynamic_batching`) or modelgate's own
 * config.json form, turned into modelgate's validated ModelConfig.
 */
import { ModelInvalidError } from '../errors';
import { DATATYPES, modelConfigSchema, type Datatype, type ModelConfig } from './model-config';

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function invalid(model: string, message: string): ModelInvalidError {
  return new ModelInvalidError(`Model "${model}": config ${message}`, { model, reason: 'CONFIG_INVALID' });
}

function tritonDatatype(model: string, value: unknown): Datatype {
  const name = typeof value === 'string' ? value.replace(/^TYPE_/, '') : '';
  const mapped = name === 'STRING' ? '' : name;
  if (!(DATATYPES as readonly string[]).includes(mapped)) throw invalid(model, `data_type ${JSON.stringify(value)} is not one modelgate serves (${DATATYPES.map((d) => `TYPE_${d}`).join(', ')})`);
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

/** Triton's JSON model config → modelgate's config.json form (unvalidated). */
function fromTriton(model: string, raw: Json): Json {
  const backend = raw['backend'] ?? raw['platform'];
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
    out['dynamic_batching'] = db;
  }
  return out;
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
  if (raw['name'] !== undefined && raw['name'] !== '' && raw['name'] !== model) throw invalid(model, `name "${String(raw['name'])}" must be the model's name`);
  const modelgateForm = Array.isArray(raw['inputs']) || Array.isArray(raw['outputs']);
  const candidate = modelgateForm ? { ...raw, name: model } : fromTriton(model, raw);
  const parsed = modelConfigSchema.safeParse(candidate);
  if (!parsed.success) {
    throw invalid(model, parsed.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('; '));
  }
  return parsed.data;
}
