import { loadOipServices } from './grpc.protos';
import { checkModelInferWire, guardedService, UnreadableMessage } from './grpc.bounds';

const { inference } = loadOipServices();
const serialize = (m: unknown): Buffer => inference['ModelInfer']!.requestSerialize(m);

describe('gRPC decode bound (issue #28 item 1)', () => {
  it('lets a message under the cap through, with every field counted', () => {
    const message = serialize({ model_name: 'fashion-cnn', inputs: [{ name: 'image', datatype: 'FP32', shape: [2, 1, 28, 28], contents: { fp32_contents: new Array<number>(1568).fill(0.5) } }] });
    expect(() => checkModelInferWire(message, 1600)).not.toThrow();
    // 1568 floats + shape's 4 dims + the fields around them: over a cap of 1568.
    expect(() => checkModelInferWire(message, 1568)).toThrow(/more than 1568 values; send tensors as raw_input_contents/);
  });

  it('counts packed varints by their last bytes and refuses past the cap without decoding', () => {
    const int64 = serialize({ model_name: 'm', inputs: [{ name: 'x', datatype: 'INT64', shape: [3000], contents: { int64_contents: new Array<string>(3000).fill('0') } }] });
    expect(() => checkModelInferWire(int64, 2000)).toThrow(/more than 2000 values/);
    const bytes = serialize({ model_name: 'm', inputs: [{ name: 'x', datatype: 'BYTES', shape: [3000], contents: { bytes_contents: new Array<Buffer>(3000).fill(Buffer.alloc(0)) } }] });
    expect(() => checkModelInferWire(bytes, 2000)).toThrow(/more than 2000 values/);
    const raw = serialize({ model_name: 'm', inputs: [{ name: 'x', datatype: 'FP32', shape: [1000000] }], raw_input_contents: [Buffer.alloc(4_000_000)] });
    expect(() => checkModelInferWire(raw, 100)).not.toThrow();
  });

  it('refuses bytes that are not a protobuf message as BAD_USER_INPUT, through the guarded decoder too', () => {
    expect(() => checkModelInferWire(Buffer.from([0x0a, 0x40, 0x66]), 100)).toThrow(/not a valid ModelInferRequest/);
    expect(() => checkModelInferWire(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), 100)).toThrow(/not a valid/);
    const guarded = guardedService(inference, 100);
    const refused = guarded['ModelInfer']!.requestDeserialize(Buffer.from([0x07]));
    expect(refused).toBeInstanceOf(UnreadableMessage);
    expect((refused as UnreadableMessage).error.code).toBe('BAD_USER_INPUT');
    // Other RPCs: not walked, but a message that does not decode is refused the same way.
    expect(guarded['ModelReady']!.requestDeserialize(Buffer.from([0x07]))).toBeInstanceOf(UnreadableMessage);
    expect(guarded['ModelReady']!.requestDeserialize(inference['ModelReady']!.requestSerialize({ name: 'fashion-cnn' }))).toEqual(expect.objectContaining({ name: 'fashion-cnn' }));
  });
});
