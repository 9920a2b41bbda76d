/**
 * modelgate's explain extension of the Open Inference Protocol:
 * `POST /v2/models/{m}[/versions/{v}]/explain` takes an inference request
 * body (JSON or binary tensors, the model's image input as [N, …dims]) with
 * the explanation's settings as scalar request `parameters`, runs the same
 * pipeline step as GraphQL `classify(explain: …)`, and answers with
 * OIP-shaped output tensors. Pure functions; the route is in oip.routes.ts.
 */
import { BadInputError } from '../../../errors';
import type { ExplainMethod, ExplainOptions } from '../../../inference/explain';
import type { ClassifyResponse } from '../../../inference/inference.service';

const METHODS: readonly ExplainMethod[] = ['OCCLUSION', 'RISE', 'ATTENTION'];

function int(params: Record<string, unknown>, name: string): number | undefined {
  const value = params[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw new BadInputError(`${name} must be a whole number`, `parameters.${name}`);
  return value;
}

/** `parameters`: method (occlusion | rise | attention, any case), patch, stride, masks, mask_grid, seed, target_class, heatmap. */
export function parseExplainParameters(params: Record<string, unknown>): ExplainOptions {
  const method = typeof params['method'] === 'string' ? params['method'].toUpperCase() : undefined;
  if (!method || !(METHODS as readonly string[]).includes(method)) {
    throw new BadInputError('parameters.method must be one of occlusion, rise, attention', 'parameters.method');
  }
  const heatmap = params['heatmap'];
  if (heatmap !== undefined && typeof heatmap !== 'boolean') throw new BadInputError('heatmap must be true or false', 'parameters.heatmap');
  return {
    method: method as ExplainMethod,
    patch: int(params, 'patch') ?? null,
    stride: int(params, 'stride') ?? null,
    masks: int(params, 'masks') ?? null,
    maskGrid: int(params, 'mask_grid') ?? null,
    seed: int(params, 'seed') ?? null,
    targetClass: int(params, 'target_class') ?? null,
    heatmap: heatmap === true,
  };
}

/** Maps the explain parameters' GraphQL field names (in BAD_USER_INPUT `field`) to the REST ones. */
export function restField(field: unknown): unknown {
  const names: Record<string, string> = {
    'explain.method': 'parameters.method',
    'explain.patch': 'parameters.patch',
    'explain.stride': 'parameters.stride',
    'explain.masks': 'parameters.masks',
    'explain.maskGrid': 'parameters.mask_grid',
    'explain.seed': 'parameters.seed',
    'explain.targetClass': 'parameters.target_class',
    explain: 'parameters',
  };
  return typeof field === 'string' ? (names[field] ?? field) : field;
}

/**
 * The answer: `saliency` FP32 [N, h, w] (0..1), `explained_class` INT64 [N],
 * `explained_score` FP32 [N], and with heatmap `heatmap_png` BYTES [N]
 * (base64 strings, as OIP writes BYTES in JSON); request-level `parameters`
 * say the method and the items run.
 */
export function encodeExplainResponse(result: ClassifyResponse, id: string | null): Record<string, unknown> {
  const explanations = result.results.map((r) => r.explanation!);
  const [h, w] = explanations[0]!.shape;
  const n = explanations.length;
  const outputs: Record<string, unknown>[] = [
    { name: 'saliency', datatype: 'FP32', shape: [n, h, w], data: explanations.flatMap((e) => Array.from(e.data)) },
    { name: 'explained_class', datatype: 'INT64', shape: [n], data: explanations.map((e) => e.explainedClass) },
    { name: 'explained_score', datatype: 'FP32', shape: [n], data: explanations.map((e) => e.explainedScore) },
  ];
  if (explanations.every((e) => e.heatmapPng !== null)) outputs.push({ name: 'heatmap_png', datatype: 'BYTES', shape: [n], data: explanations.map((e) => e.heatmapPng) });
  return {
    model_name: result.modelName,
    model_version: result.modelVersion,
    ...(id !== null ? { id } : {}),
    parameters: { method: explanations[0]!.method, items: explanations.reduce((sum, e) => sum + e.items, 0), items_per_image: explanations[0]!.items },
    outputs,
  };
}
