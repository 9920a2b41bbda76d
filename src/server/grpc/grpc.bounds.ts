/**
 * The gRPC door's hostile-input guard (issue #28 item 1, for gRPC): bounds
 * the work of decoding a ModelInferRequest before it is done.
 *
 * grpc-js bounds a message's bytes (BODY_LIMIT_BYTES), not what decoding it
 * costs: protobuf packs an INT64 zero in one byte and an empty `bytes`
 * entry in two, and @grpc/proto-loader turns each into a JavaScript value
 * (a decimal string, a Buffer). Measured on the production build's
 * deserializer, one 20 MB message held the event loop 8.4 s (int64_contents,
 * 2.0 GB RSS), 11.5 s (bytes_contents, 2.6 GB), 1.5 s (bool_contents) and
 * 0.7 s (fp32_contents). So every request message is first walked on the
 * wire, without decoding, counting the values decoding would create (every
 * field occurrence, every element of a packed field), and refused past the
 * same cap as the JSON doors' (maxJsonValues): tensors that large travel in
 * raw_input_contents, one Buffer each. The walk stops at the cap, so its own
 * cost is bounded too. A message that does not decode is refused the same
 * way, as BAD_INPUT, rather than grpc-js's uncoded INTERNAL.
 */
import type { ServiceDefinition } from '@grpc/grpc-js';
import { BadInputError } from '../../errors';

/** A request the guard refused: handlers answer its error instead of reading it. */
export class UnreadableMessage {
  constructor(readonly error: BadInputError) {}
}

/** How a length-delimited field of a walked message is read: a nested message, a packed array, or opaque (one value). */
type Packed = 'varint' | 'fixed32' | 'fixed64';
type FieldKind = { message: Schema } | { packed: Packed } | 'opaque';
interface Schema {
  [field: number]: FieldKind;
}

// grpc_service.proto: InferTensorContents, InferInputTensor, InferRequestedOutputTensor, ModelInferRequest.
const MAP_ENTRY: Schema = {};
const CONTENTS: Schema = {
  1: { packed: 'varint' },
  2: { packed: 'varint' },
  3: { packed: 'varint' },
  4: { packed: 'varint' },
  5: { packed: 'varint' },
  6: { packed: 'fixed32' },
  7: { packed: 'fixed64' },
};
const INPUT: Schema = { 3: { packed: 'varint' }, 4: { message: MAP_ENTRY }, 5: { message: CONTENTS } };
const OUTPUT: Schema = { 2: { message: MAP_ENTRY } };
const MODEL_INFER_REQUEST: Schema = { 4: { message: MAP_ENTRY }, 5: { message: INPUT }, 6: { message: OUTPUT } };

class TooMany extends Error {}
class Malformed extends Error {}

class Walker {
  values = 0;
  constructor(
    private readonly bytes: Buffer,
    private readonly maxValues: number,
  ) {}

  private count(n: number): void {
    this.values += n;
    if (this.values > this.maxValues) throw new TooMany();
  }

  private varint(at: number, end: number): [value: number, next: number] {
    let value = 0;
    let scale = 1;
    for (let i = at; i < end && i < at + 10; i += 1) {
      const b = this.bytes[i]!;
      value += (b & 0x7f) * scale;
      scale *= 128;
      if (b < 0x80) return [value, i + 1];
    }
    throw new Malformed();
  }

  walk(schema: Schema, start: number, end: number): void {
    let at = start;
    while (at < end) {
      const [tag, afterTag] = this.varint(at, end);
      const field = Math.floor(tag / 8);
      const wire = tag % 8;
      if (field === 0) throw new Malformed();
      this.count(1);
      if (wire === 0) [, at] = this.varint(afterTag, end);
      else if (wire === 1) at = afterTag + 8;
      else if (wire === 5) at = afterTag + 4;
      else if (wire === 2) {
        const [length, body] = this.varint(afterTag, end);
        at = body + length;
        if (at > end) throw new Malformed();
        const kind = schema[field] ?? 'opaque';
        if (kind === 'opaque') continue;
        if ('message' in kind) this.walk(kind.message, body, at);
        else this.packed(kind.packed, body, at);
      } else throw new Malformed();
      if (at > end) throw new Malformed();
    }
  }

  /** Elements of a packed field: fixed widths by length, varints by their last bytes (stopping at the cap). */
  private packed(kind: Packed, start: number, end: number): void {
    if (kind === 'fixed32' || kind === 'fixed64') {
      this.count(Math.ceil((end - start) / (kind === 'fixed32' ? 4 : 8)));
      return;
    }
    for (let i = start; i < end; i += 1) if (this.bytes[i]! < 0x80) this.count(1);
  }
}

/**
 * Counts the values a ModelInferRequest's decoding would create; throws
 * BadInputError past `maxValues` or on bytes that are not a protobuf message.
 */
export function checkModelInferWire(bytes: Buffer, maxValues: number): void {
  const walker = new Walker(bytes, maxValues);
  try {
    walker.walk(MODEL_INFER_REQUEST, 0, bytes.length);
  } catch (error) {
    if (error instanceof TooMany) {
      throw new BadInputError(
        `The message holds more than ${maxValues} values; send tensors as raw_input_contents (one bytes entry per input)`,
        'inputs',
      );
    }
    if (error instanceof Malformed) throw new BadInputError('The message is not a valid ModelInferRequest (protobuf wire format)', 'message');
    throw error;
  }
}

/**
 * The service definition with guarded request decoders: ModelInfer and
 * ModelStreamInfer messages are walked first (checkModelInferWire); a
 * message of any RPC that is refused or does not decode becomes an
 * UnreadableMessage for its handler to answer as BAD_INPUT.
 */
export function guardedService(service: ServiceDefinition, maxValues: number): ServiceDefinition {
  const guarded: Record<string, ServiceDefinition[string]> = {};
  for (const [name, method] of Object.entries(service)) {
    const walk = name === 'ModelInfer' || name === 'ModelStreamInfer';
    guarded[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer): unknown => {
        try {
          if (walk) checkModelInferWire(bytes, maxValues);
          return method.requestDeserialize(bytes);
        } catch (error) {
          if (error instanceof BadInputError) return new UnreadableMessage(error);
          return new UnreadableMessage(new BadInputError(`The message is not a valid ${name} request (protobuf wire format)`, 'message'));
        }
      },
    };
  }
  return guarded;
}
