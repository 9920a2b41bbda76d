/**
 * Tiny ONNX graphs written as protobuf bytes, so tests can build models with
 * known behaviour without Python or the onnx package. Only the fields these
 * graphs use (ModelProto, GraphProto, NodeProto, TensorProto, ValueInfoProto).
 */

function varint(value: number): number[] {
  const out: number[] = [];
  let v = value;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

type Field = number[];
const key = (field: number, wire: number) => varint(field * 8 + wire);
const int = (field: number, value: number): Field => [...key(field, 0), ...varint(value)];
const bytes = (field: number, data: Uint8Array | number[]): Field => [...key(field, 2), ...varint(data.length), ...data];
const str = (field: number, text: string): Field => bytes(field, [...Buffer.from(text, 'utf8')]);
const msg = (field: number, ...parts: Field[]): Field => bytes(field, parts.flat());

const FLOAT = 1;
const ATTRIBUTE_INT = 2;

/** A float tensor value-info with a symbolic batch axis first (dims: the rest). */
function valueInfo(field: number, name: string, dims: number[]): Field {
  const dim = (d: number | string) => msg(1, typeof d === 'string' ? str(2, d) : int(1, d));
  return msg(field, str(1, name), msg(2, msg(1, int(1, FLOAT), msg(2, ...['batch', ...dims].map(dim)))));
}

function node(op: string, inputs: string[], outputs: string[], attributes: Record<string, number> = {}): Field {
  return msg(
    1,
    ...inputs.map((i) => str(1, i)),
    ...outputs.map((o) => str(2, o)),
    str(4, op),
    ...Object.entries(attributes).map(([name, value]) => msg(5, str(1, name), int(3, value), int(20, ATTRIBUTE_INT))),
  );
}

function initializer(name: string, dims: number[], values: Float32Array): Field {
  return msg(5, ...dims.map((d) => int(1, d)), int(2, FLOAT), str(8, name), bytes(9, new Uint8Array(values.buffer, values.byteOffset, values.byteLength)));
}

function model(graph: Field[]): Buffer {
  // IR version 7 with opset 13: what onnxruntime 1.30 loads without complaint.
  return Buffer.from([...int(1, 7), ...str(2, 'modelgate-test'), ...msg(7, ...graph), ...msg(8, str(1, ''), int(2, 13))]);
}

/**
 * image [batch,1,h,w] → Flatten → MatMul W [h·w, 2] → Softmax → probabilities [batch,2].
 * Class 0's logit is `weight` × the sum of the pixels inside `region` (rows
 * y0..y1-1, cols x0..x1-1); nothing else affects the output.
 */
export function regionProbeModel(h: number, w: number, region: { y0: number; y1: number; x0: number; x1: number }, weight: number): Buffer {
  const W = new Float32Array(h * w * 2);
  for (let y = region.y0; y < region.y1; y += 1) for (let x = region.x0; x < region.x1; x += 1) W[(y * w + x) * 2] = weight;
  return model([
    node('Flatten', ['image'], ['flat'], { axis: 1 }),
    node('MatMul', ['flat', 'W'], ['logits']),
    node('Softmax', ['logits'], ['probabilities'], { axis: 1 }),
    str(2, 'region-probe'),
    initializer('W', [h * w, 2], W),
    valueInfo(11, 'image', [1, h, w]),
    valueInfo(12, 'probabilities', [2]),
  ]);
}

/** features [batch,n] → Softmax → probabilities [batch,n]: a model with no image input. */
export function vectorModel(n: number): Buffer {
  return model([node('Softmax', ['features'], ['probabilities'], { axis: 1 }), str(2, 'vector'), valueInfo(11, 'features', [n]), valueInfo(12, 'probabilities', [n])]);
}
