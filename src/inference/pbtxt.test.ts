import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ModelInvalidError } from '../errors';
import { ModelConfigError, scanRepository } from './model-config';
import { parseTritonPbtxt, TextFormatError } from './pbtxt';
import { parsePbtxtConfig, readModelConfig } from './triton-config';

const EXAMPLES = path.resolve(__dirname, '../../test/inference/triton-configs');
const MODELS = path.resolve(__dirname, '../../models');
const example = (name: string) => readFileSync(path.join(EXAMPLES, `${name}.pbtxt`), 'utf8');

describe("config.pbtxt: Triton's own example configs", () => {
  it('reads densenet_onnx: every field, nested messages and enums, by the proto', () => {
    const raw = parseTritonPbtxt(example('densenet_onnx'));
    expect(raw).toEqual({
      name: 'densenet_onnx',
      platform: 'onnxruntime_onnx',
      max_batch_size: 1,
      input: [{ name: 'data_0', data_type: 'TYPE_FP32', format: 'FORMAT_NCHW', dims: [3, 224, 224] }],
      output: [{ name: 'fc6_1', data_type: 'TYPE_FP32', dims: [1000], reshape: { shape: [1000, 1, 1] }, label_filename: 'densenet_labels.txt' }],
    });
    const config = parsePbtxtConfig('densenet_onnx', example('densenet_onnx'));
    expect(config).toMatchObject({ name: 'densenet_onnx', max_batch_size: 1, inputs: [{ name: 'data_0', datatype: 'FP32', dims: [3, 224, 224] }], outputs: [{ name: 'fc6_1', datatype: 'FP32', dims: [1000] }] });
    expect(config.warnings).toEqual([
      'input[0].format: not honoured by modelgate (ignored)',
      'output[0].reshape: not honoured by modelgate (ignored)',
      'output[0].label_filename: not honoured by modelgate (ignored)',
    ]);
  });

  it('reads simple (licence header comments, two inputs): max_batch_size 8 and nothing unhonoured', () => {
    const config = parsePbtxtConfig('simple', example('simple'));
    expect(config.max_batch_size).toBe(8);
    expect(config.inputs).toEqual([
      { name: 'INPUT0', datatype: 'INT32', dims: [16] },
      { name: 'INPUT1', datatype: 'INT32', dims: [16] },
    ]);
    expect(config.outputs.map((o) => o.name)).toEqual(['OUTPUT0', 'OUTPUT1']);
    expect(config.warnings).toBeUndefined();
  });

  it('reads simple_sequence: sequence batching and instance groups are warnings, not dropped', () => {
    const raw = parseTritonPbtxt(example('simple_sequence'));
    expect(raw['sequence_batching']).toEqual({
      control_input: [
        { name: 'START', control: [{ kind: 'CONTROL_SEQUENCE_START', int32_false_true: [0, 1] }] },
        { name: 'READY', control: [{ kind: 'CONTROL_SEQUENCE_READY', int32_false_true: [0, 1] }] },
      ],
    });
    const config = parsePbtxtConfig('simple_sequence', example('simple_sequence'));
    expect(config.max_batch_size).toBe(8);
    expect(config.warnings).toEqual(['sequence_batching: not honoured by modelgate (ignored)', 'instance_group: not honoured by modelgate (ignored)']);
  });

  it('reads the ensemble (maps, negative int64) and simple_identity, then refuses to serve them (not ONNX)', () => {
    const raw = parseTritonPbtxt(example('preprocess_resnet50_ensemble'));
    const steps = (raw['ensemble_scheduling'] as { step: Record<string, unknown>[] }).step;
    expect(steps[1]).toEqual({ model_name: 'resnet50_netdef', model_version: -1, input_map: { 'gpu_0/data': 'preprocessed_image' }, output_map: { 'gpu_0/softmax': 'OUTPUT' } });
    expect(() => parsePbtxtConfig('preprocess_resnet50_ensemble', example('preprocess_resnet50_ensemble'))).toThrow(/"ensemble": modelgate serves ONNX models only/);
    expect(parseTritonPbtxt(example('simple_identity'))['input']).toEqual([{ name: 'INPUT0', data_type: 'TYPE_STRING', dims: [-1] }]);
    expect(() => parsePbtxtConfig('simple_identity', example('simple_identity'))).toThrow(ModelInvalidError);
  });
});

describe('config.pbtxt: the text format', () => {
  it('takes <> delimiters, ; and , separators, adjacent strings, hex and octal integers, maps and lists of messages', () => {
    const raw = parseTritonPbtxt(`
      name: "a" 'b' ; max_batch_size: 0x10,
      dynamic_batching < preferred_batch_size: [ 4, 010 ] max_queue_delay_microseconds: 100 >
      parameters { key: "k" value { string_value: "v\\x41\\n" } }
      response_cache { enable: true }
      version_policy { specific { versions: [ 1, 3 ] } }
      input { name: "x" data_type: TYPE_FP32 dims: -1 dims: 4 }  # a comment
    `);
    expect(raw).toEqual({
      name: 'ab',
      max_batch_size: 16,
      dynamic_batching: { preferred_batch_size: [4, 8], max_queue_delay_microseconds: 100 },
      parameters: { k: { string_value: 'vA\n' } },
      response_cache: { enable: true },
      version_policy: { specific: { versions: [1, 3] } },
      input: [{ name: 'x', data_type: 'TYPE_FP32', dims: [-1, 4] }],
    });
  });

  it.each([
    ['name: "m"\nmax_batch_sise: 8', /line 2:1: ModelConfig has no field "max_batch_sise"/],
    ['max_batch_size: "8"', /"max_batch_size" takes an integer/],
    ['max_batch_size: 4294967296', /out of range for int32/],
    ['input { data_type: TYPE_FP33 }', /"data_type": "TYPE_FP33" is not a value of DataType/],
    ['input { name: "x" ', /expected "}" to close the message ModelInput/],
    ['name: "a"\nname: "b"', /line 2:1: "name" is set twice/],
    ['name: "unclosed', /string not closed/],
    ['max_batch_size 8', /expected ":" after "max_batch_size"/],
    ['name: [ "a" ]', /"name" is not a repeated field/],
    ['[ext.field]: 1', /extensions/],
  ])('refuses %j naming what and where', (text, message) => {
    expect(() => parseTritonPbtxt(text)).toThrow(TextFormatError);
    expect(() => parseTritonPbtxt(text)).toThrow(message);
  });
});

describe('config.pbtxt in a model folder', () => {
  function folder(files: Record<string, string>): string {
    const root = mkdtempSync(path.join(os.tmpdir(), 'mg-pbtxt-'));
    mkdirSync(path.join(root, 'lstm', '1'), { recursive: true });
    copyFileSync(path.join(MODELS, 'fashion-lstm', '1', 'model.onnx'), path.join(root, 'lstm', '1', 'model.onnx'));
    for (const [name, text] of Object.entries(files)) writeFileSync(path.join(root, 'lstm', name), text);
    return root;
  }
  const PBTXT = `
    platform: "onnxruntime_onnx"
    max_batch_size: 8
    input [ { name: "image" data_type: TYPE_FP32 dims: [ 1, 28, 28 ] } ]
    output [ { name: "probabilities" data_type: TYPE_FP32 dims: [ 10 ] } ]
    dynamic_batching { max_queue_delay_microseconds: 500 preferred_batch_size: [ 4, 8 ] default_queue_policy { max_queue_size: 32 } }
    instance_group [ { count: 2 kind: KIND_CPU } ]
    model_warmup [ { name: "w" batch_size: 1 inputs { key: "image" value: { data_type: TYPE_FP32 dims: [ 1, 28, 28 ] zero_data: true } } } ]
  `;

  it('is read where there is no config.json: the fields modelgate honours, a warning per field it does not', async () => {
    const [entry] = await scanRepository(folder({ 'config.pbtxt': PBTXT }));
    expect(entry).toMatchObject({ name: 'lstm', configFile: null, versions: [1] });
    const config = await readModelConfig(entry!);
    expect(config).toMatchObject({
      name: 'lstm',
      max_batch_size: 8,
      dynamic_batching: { max_queue_delay_microseconds: 500, preferred_batch_size: [4, 8], max_queue_size: 32 },
      inputs: [{ name: 'image', datatype: 'FP32', dims: [1, 28, 28] }],
    });
    // model_warmup is honoured (run before the version turns READY): no warning for it.
    expect(config?.model_warmup).toEqual([{ name: 'w', batch_size: 1, count: 1, inputs: { image: { data_type: 'FP32', dims: [1, 28, 28], zero_data: true } } }]);
    expect(config?.warnings).toEqual(['instance_group: not honoured by modelgate (ignored)']);
  });

  it('loses to config.json where both exist, with a warning', async () => {
    const json = readFileSync(path.join(MODELS, 'fashion-lstm', 'config.json'), 'utf8').replace('"fashion-lstm"', '"lstm"');
    const [entry] = await scanRepository(folder({ 'config.pbtxt': PBTXT, 'config.json': json }));
    const config = await readModelConfig(entry!);
    expect(config?.max_batch_size).toBe(64);
    expect(config?.warnings).toEqual(['config.pbtxt: not read (config.json wins where both exist)']);
  });

  it('names the file and the line of a broken config.pbtxt', async () => {
    const [entry] = await scanRepository(folder({ 'config.pbtxt': 'max_batch_size: 8\nmax_batch: 4' }));
    const error = await readModelConfig(entry!).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelConfigError);
    expect(String((error as Error).message)).toMatch(/config\.pbtxt: .*line 2:1: ModelConfig has no field "max_batch"/);
  });
});
