'use strict';
/**
 * Jest environment for tests that call onnxruntime-node in the test's own
 * realm. Jest runs each test file in a vm context whose typed-array
 * constructors differ from the main realm's, while onnxruntime-node's native
 * binding creates its output buffers (Float32Array, ...) in the main realm.
 * onnxruntime-common's Tensor constructor then rejects them with
 * "A float32 tensor's data must be type of function Float32Array()".
 * Sharing the main realm's typed-array constructors with the context fixes it.
 * (Inference inside worker threads is unaffected: workers are real realms.)
 *
 * Use per file with the docblock  @jest-environment ./test/models/ort-environment.js
 */
const { TestEnvironment } = require('jest-environment-node');

const TYPED_ARRAYS = [
  'Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array',
  'Float32Array', 'Float64Array', 'BigInt64Array', 'BigUint64Array', 'Float16Array',
];

class OrtEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of TYPED_ARRAYS) {
      if (typeof globalThis[name] === 'function') this.global[name] = globalThis[name];
    }
  }
}

module.exports = OrtEnvironment;
