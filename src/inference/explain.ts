/**
 * Model-agnostic explanations for image models (issue #15): occlusion
 * sensitivity and RISE need only forward passes, so every perturbed copy of
 * an image is one more item for the model's batcher and workers; ATTENTION
 * returns the map a model already outputs. This module sizes a request
 * (items = 1 + perturbations per image, known before admission), builds the
 * perturbed copies, turns the scores back into a saliency map normalised to
 * 0..1, and renders the optional PNG overlay. It runs no model itself.
 *
 * Main-thread cost is bounded: building the copies and accumulating the map
 * is O(items × pixels), and items × input bytes is capped by
 * INFERENCE_MAX_BYTES_PER_REQUEST and MAX_EXPLAIN_ITEMS (for the 28×28
 * models, 4096 items are 3.2M float writes, a few ms).
 */
import sharp from 'sharp';
import { BadInputError } from '../errors';
import type { ServedConfig } from './registry';

export type ExplainMethod = 'OCCLUSION' | 'RISE' | 'ATTENTION';

export interface ExplainOptions {
  method: ExplainMethod;
  /** Occlusion: side of the square patch, in model-input pixels. */
  patch?: number | null;
  /** Occlusion: step between patch positions. */
  stride?: number | null;
  /** RISE: number of random masks. */
  masks?: number | null;
  /** RISE: cells per side of the low-resolution random grid. */
  maskGrid?: number | null;
  /** RISE: seed of the masks (the same seed gives the same map). */
  seed?: number | null;
  /** Class to explain; default the top-1 prediction of the unperturbed image. */
  targetClass?: number | null;
  /** Also return a PNG heatmap overlay (base64). */
  heatmap?: boolean | null;
}

/** Where the image sits in the model's input (one item, no batch axis). */
export interface ImageGeometry {
  layout: 'NCHW' | 'NHWC';
  channels: number;
  height: number;
  width: number;
}

/** Documented bounds (README "Explanations"). */
export const EXPLAIN_BOUNDS = {
  defaultPatch: 4,
  defaultStride: 2,
  defaultMasks: 500,
  maxMasks: 4000,
  defaultMaskGrid: 7,
  minMaskGrid: 2,
  defaultSeed: 1,
  /** All items of one explain request (originals + perturbed copies, every image). */
  maxItems: 8192,
  /** Heatmap PNGs are drawn at least this many pixels wide (nearest-neighbour upscaling). */
  heatmapMinSide: 224,
} as const;

/** Probability the RISE paper keeps a grid cell with. */
const RISE_KEEP = 0.5;

/**
 * The image layout of a model's single FP32 input: from config.json's
 * `preprocessing`, else from the (derived) dims when they look like one
 * image, [C,H,W] or [H,W,C] with C = 1 or 3. null: not an image model.
 */
export function imageGeometry(config: ServedConfig): ImageGeometry | null {
  const input = config.inputs[0];
  if (config.inputs.length !== 1 || !input || input.datatype !== 'FP32') return null;
  const dims = input.dims;
  const prep = config.preprocessing;
  if (prep) return { layout: prep.layout, channels: prep.color === 'grey' ? 1 : 3, height: prep.height, width: prep.width };
  // Without batching the graph's dims include its fixed batch axis: one image is [1, …].
  const item = config.maxBatchSize === 0 && dims.length === 4 && dims[0] === 1 ? dims.slice(1) : dims;
  if (item.length !== 3 || item.some((d) => d < 1)) return null;
  const [a, b, c] = item as [number, number, number];
  if ((a === 1 || a === 3) && b >= 2 && c >= 2) return { layout: 'NCHW', channels: a, height: b, width: c };
  if ((c === 1 || c === 3) && a >= 2 && b >= 2) return { layout: 'NHWC', channels: c, height: a, width: b };
  return null;
}

/** A validated explanation request for one model: what it runs per image. */
export interface ExplainPlan {
  method: ExplainMethod;
  geometry: ImageGeometry;
  /** Perturbed copies per image (0 for ATTENTION). */
  perturbations: number;
  targetClass: number | null;
  heatmap: boolean;
  patch: number;
  stride: number;
  masks: number;
  maskGrid: number;
  seed: number;
  /** Occlusion: top-left corner of every patch position. */
  positions: [number, number][];
}

function bounded(value: number | null | undefined, fallback: number, min: number, max: number, field: string, what: string): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min || v > max) throw new BadInputError(`${what} must be a whole number between ${min} and ${max}, got ${v}`, field);
  return v;
}

/** Patch positions along one axis: every `stride`, plus the last one so the far edge is covered too. */
function starts(size: number, patch: number, stride: number): number[] {
  const out: number[] = [];
  for (let s = 0; s + patch <= size; s += stride) out.push(s);
  if (out[out.length - 1] !== size - patch) out.push(size - patch);
  return out;
}

/**
 * Checks the parameters against the model (BAD_USER_INPUT naming the field)
 * and sizes the work. Runs before admission: nothing is built here.
 */
export function planExplanation(options: ExplainOptions, config: ServedConfig, classes: number): ExplainPlan {
  const geometry = imageGeometry(config);
  const hasAttention = config.outputs.some((o) => o.name === 'attention');
  if (options.method === 'ATTENTION') {
    if (!hasAttention) throw new BadInputError(`Model "${config.name}" has no attention output; use method OCCLUSION or RISE`, 'explain.method');
    if (options.targetClass != null) throw new BadInputError('ATTENTION maps are not class-specific; targetClass applies to OCCLUSION and RISE', 'explain.targetClass');
  }
  if (!geometry) {
    throw new BadInputError(
      `Model "${config.name}" has no image input (one FP32 input shaped [C,H,W] or [H,W,C] with 1 or 3 channels, or a preprocessing block); explanations need one`,
      'explain',
    );
  }
  const side = Math.min(geometry.height, geometry.width);
  const base = {
    method: options.method,
    geometry,
    heatmap: options.heatmap === true,
    targetClass: null as number | null,
    patch: 0,
    stride: 0,
    masks: 0,
    maskGrid: 0,
    seed: 0,
    positions: [] as [number, number][],
  };
  if (options.targetClass != null) {
    base.targetClass = bounded(options.targetClass, 0, 0, Math.max(classes - 1, 0), 'explain.targetClass', 'targetClass');
  }
  switch (options.method) {
    case 'ATTENTION':
      return { ...base, perturbations: 0 };
    case 'OCCLUSION': {
      const patch = bounded(options.patch, Math.min(EXPLAIN_BOUNDS.defaultPatch, side), 1, side, 'explain.patch', `patch (the image is ${geometry.width}×${geometry.height})`);
      const stride = bounded(options.stride, Math.min(EXPLAIN_BOUNDS.defaultStride, patch), 1, side, 'explain.stride', 'stride');
      const positions: [number, number][] = [];
      for (const y of starts(geometry.height, patch, stride)) for (const x of starts(geometry.width, patch, stride)) positions.push([y, x]);
      return { ...base, patch, stride, positions, perturbations: positions.length };
    }
    case 'RISE': {
      const masks = bounded(options.masks, EXPLAIN_BOUNDS.defaultMasks, 1, EXPLAIN_BOUNDS.maxMasks, 'explain.masks', 'masks');
      const maskGrid = bounded(options.maskGrid, Math.min(EXPLAIN_BOUNDS.defaultMaskGrid, side), EXPLAIN_BOUNDS.minMaskGrid, side, 'explain.maskGrid', 'maskGrid');
      const seed = bounded(options.seed, EXPLAIN_BOUNDS.defaultSeed, 0, 2 ** 31 - 1, 'explain.seed', 'seed');
      return { ...base, masks, maskGrid, seed, perturbations: masks };
    }
  }
}

/** mulberry32: a small seeded PRNG, so a RISE map is reproducible from its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * RISE masks (Petsiuk et al. 2018): a random binary grid of maskGrid² cells,
 * upsampled bilinearly to (grid + 1) cells' worth of pixels and cropped at a
 * random offset, giving smooth masks in 0..1. One H×W plane per mask.
 */
export function riseMasks(plan: ExplainPlan): Float32Array[] {
  const { height: h, width: w } = plan.geometry;
  const g = plan.maskGrid;
  const random = seededRandom(plan.seed);
  const cellH = Math.ceil(h / g);
  const cellW = Math.ceil(w / g);
  const out: Float32Array[] = [];
  for (let m = 0; m < plan.masks; m += 1) {
    const grid = new Float32Array((g + 1) * (g + 1));
    for (let i = 0; i < grid.length; i += 1) grid[i] = random() < RISE_KEEP ? 1 : 0;
    const dy = Math.floor(random() * cellH);
    const dx = Math.floor(random() * cellW);
    const mask = new Float32Array(h * w);
    for (let y = 0; y < h; y += 1) {
      // Grid coordinates of this pixel in the upsampled, shifted mask.
      const gy = Math.min((y + dy) / cellH, g - 1e-6);
      const y0 = Math.floor(gy);
      const fy = gy - y0;
      for (let x = 0; x < w; x += 1) {
        const gx = Math.min((x + dx) / cellW, g - 1e-6);
        const x0 = Math.floor(gx);
        const fx = gx - x0;
        const at = (yy: number, xx: number) => grid[yy * (g + 1) + xx]!;
        mask[y * w + x] = (1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x0 + 1)) + fy * ((1 - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1));
      }
    }
    out.push(mask);
  }
  return out;
}

/** Index of pixel (y, x), channel c, in one item of the model's input. */
function indexOf(g: ImageGeometry, y: number, x: number, c: number): number {
  return g.layout === 'NCHW' ? c * g.height * g.width + y * g.width + x : (y * g.width + x) * g.channels + c;
}

/**
 * Writes perturbed copy `k` of `image` into `out` (one item). Occlusion sets
 * the patch to 0, the background of the preprocessed input (black, or white
 * for an inverting preprocessing); RISE multiplies by the mask, i.e. blends
 * towards that same 0.
 */
export function writePerturbed(plan: ExplainPlan, image: Float32Array, k: number, masks: Float32Array[] | null, out: Float32Array): void {
  out.set(image);
  const g = plan.geometry;
  if (plan.method === 'OCCLUSION') {
    const [y0, x0] = plan.positions[k]!;
    for (let y = y0; y < y0 + plan.patch; y += 1) for (let x = x0; x < x0 + plan.patch; x += 1) for (let c = 0; c < g.channels; c += 1) out[indexOf(g, y, x, c)] = 0;
  } else if (plan.method === 'RISE') {
    const mask = masks![k]!;
    for (let y = 0; y < g.height; y += 1) for (let x = 0; x < g.width; x += 1) for (let c = 0; c < g.channels; c += 1) out[indexOf(g, y, x, c)]! *= mask[y * g.width + x]!;
  }
}

/** Min-max to 0..1; a constant map (nothing mattered) becomes all zeros. */
export function normalise(map: Float32Array): Float32Array {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of map) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const out = new Float32Array(map.length);
  if (!(hi > lo)) return out;
  for (let i = 0; i < map.length; i += 1) out[i] = (map[i]! - lo) / (hi - lo);
  return out;
}

/**
 * The saliency map (H×W, 0..1) from the explained class's score on the
 * original (`base`) and on each perturbed copy (`scores[k]`). Occlusion: the
 * mean drop in score over the patches covering a pixel. RISE: the
 * score-weighted mean of the masks, Σ (s_k − s̄) M_k / (N · p).
 */
export function saliencyFrom(plan: ExplainPlan, base: number, scores: number[], masks: Float32Array[] | null): Float32Array {
  const { height: h, width: w } = plan.geometry;
  const sum = new Float32Array(h * w);
  if (plan.method === 'OCCLUSION') {
    const covered = new Float32Array(h * w);
    plan.positions.forEach(([y0, x0], k) => {
      const drop = base - scores[k]!;
      for (let y = y0; y < y0 + plan.patch; y += 1) {
        for (let x = x0; x < x0 + plan.patch; x += 1) {
          sum[y * w + x]! += drop;
          covered[y * w + x]! += 1;
        }
      }
    });
    for (let i = 0; i < sum.length; i += 1) sum[i] = covered[i]! > 0 ? sum[i]! / covered[i]! : 0;
  } else {
    // Scores centred on their mean: in expectation the same map up to a constant
    // (every pixel is kept with probability p), without the Monte Carlo noise
    // of each pixel's mask count times the mean score.
    const mean = scores.reduce((a, b) => a + b, 0) / Math.max(scores.length, 1);
    masks!.forEach((mask, k) => {
      const s = scores[k]! - mean;
      for (let i = 0; i < sum.length; i += 1) sum[i]! += s * mask[i]!;
    });
    for (let i = 0; i < sum.length; i += 1) sum[i]! /= masks!.length * RISE_KEEP;
  }
  return normalise(sum);
}

/**
 * The attention output as a map: a square count is a √N×√N grid of patches
 * (fashion-attention: 4×4), anything else N horizontal bands (fashion-hybrid:
 * 14 bands of 2 rows), as models/README.md describes them.
 */
export function attentionMap(values: number[]): { shape: [number, number]; data: Float32Array } {
  const side = Math.round(Math.sqrt(values.length));
  const shape: [number, number] = side * side === values.length ? [side, side] : [values.length, 1];
  return { shape, data: normalise(Float32Array.from(values)) };
}

/**
 * A PNG a dashboard can show as is: the image in grey with the map over it
 * in a "hot" colour scale (black → red → yellow → white) at half opacity,
 * upscaled with nearest-neighbour to at least EXPLAIN_BOUNDS.heatmapMinSide.
 * Encoded by sharp (libvips, off the event loop).
 */
export async function heatmapPng(image: Float32Array, geometry: ImageGeometry, map: Float32Array, mapShape: [number, number]): Promise<string> {
  const { height: h, width: w } = geometry;
  const [mh, mw] = mapShape;
  const rgb = Buffer.alloc(h * w * 3);
  let hi = 0;
  for (const v of image) if (v > hi) hi = v;
  for (let y = 0; y < h; y += 1) {
    for (let x = 0; x < w; x += 1) {
      let grey = 0;
      for (let c = 0; c < geometry.channels; c += 1) grey += image[indexOf(geometry, y, x, c)]!;
      grey = hi > 0 ? grey / geometry.channels / hi : 0;
      const v = map[Math.min(mh - 1, Math.floor((y * mh) / h)) * mw + Math.min(mw - 1, Math.floor((x * mw) / w))]!;
      const hot = [Math.min(1, 3 * v), Math.min(1, Math.max(0, 3 * v - 1)), Math.min(1, Math.max(0, 3 * v - 2))];
      for (let c = 0; c < 3; c += 1) rgb[(y * w + x) * 3 + c] = Math.round(255 * (0.5 * grey + 0.5 * hot[c]!));
    }
  }
  const scale = Math.max(1, Math.ceil(EXPLAIN_BOUNDS.heatmapMinSide / Math.max(h, w)));
  const png = await sharp(rgb, { raw: { width: w, height: h, channels: 3 } })
    .resize(w * scale, h * scale, { kernel: 'nearest' })
    .png()
    .toBuffer();
  return png.toString('base64');
}
