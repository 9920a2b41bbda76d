/**
 * The deletion metric of Petsiuk et al. 2018 (RISE), used by the tests and
 * `npm run bench:explain` to measure whether a saliency map is faithful:
 * delete (set to the background value, 0) the most salient pixels first, in
 * steps, and record the explained class's probability; a faithful map makes
 * it fall fast, so the area under that curve is lower than for a random
 * pixel order.
 */
import { seededRandom, type ImageGeometry } from './explain';

/** Pixel indices (y·W + x) by decreasing saliency; ties by index, so the order is deterministic. */
export function saliencyOrder(map: ArrayLike<number>): number[] {
  return Array.from({ length: map.length }, (_, i) => i).sort((a, b) => map[b]! - map[a]! || a - b);
}

/** A seeded random permutation of n pixel indices (Fisher–Yates). */
export function randomOrder(n: number, seed: number): number[] {
  const random = seededRandom(seed);
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i -= 1) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

/**
 * steps + 1 copies of one image (concatenated items in the model's layout):
 * copy k has the first round(k / steps · H·W) pixels of `order` deleted, so
 * copy 0 is the image and copy `steps` is all background.
 */
export function deletionSeries(image: Float32Array, geometry: ImageGeometry, order: number[], steps: number): Float32Array {
  const { height: h, width: w, channels, layout } = geometry;
  const pixels = h * w;
  const out = new Float32Array((steps + 1) * image.length);
  const copy = Float32Array.from(image);
  let deleted = 0;
  for (let k = 0; k <= steps; k += 1) {
    const upTo = Math.round((k / steps) * pixels);
    for (; deleted < upTo; deleted += 1) {
      const p = order[deleted]!;
      for (let c = 0; c < channels; c += 1) copy[layout === 'NCHW' ? c * pixels + p : p * channels + c] = 0;
    }
    out.set(copy, k * image.length);
  }
  return out;
}

/** Trapezoidal area under values sampled evenly on [0, 1]. */
export function areaUnderCurve(values: number[]): number {
  if (values.length < 2) return values[0] ?? 0;
  let area = 0;
  for (let i = 1; i < values.length; i += 1) area += (values[i - 1]! + values[i]!) / 2;
  return area / (values.length - 1);
}
