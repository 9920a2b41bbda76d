/**
 * A gRPC client of the gateway's OIP door built from the same vendored
 * Triton .proto files (what any generated client does), with promise
 * helpers that resolve with the response and trailing metadata, or the
 * status the call ended with.
 */
import { credentials, loadPackageDefinition, Metadata, type Client, type ServiceError, type StatusObject } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import path from 'node:path';
import { REPO_ROOT } from '../harness';
import { imageFloats } from '../inference/fixtures';

const PROTO_DIR = path.join(REPO_ROOT, 'proto', 'triton');

type Callback = (error: ServiceError | null, response: Record<string, unknown>) => void;
type UnaryMethod = (request: unknown, metadata: Metadata, options: { deadline?: number }, callback: Callback) => { on(event: 'status', fn: (s: StatusObject) => void): void };

export interface Answer<T = Record<string, unknown>> {
  ok: boolean;
  response: T | null;
  /** The status the call ended with (code 0 on success) and its trailing metadata. */
  status: StatusObject;
}

function load(): { inference: new (address: string, creds: ReturnType<typeof credentials.createInsecure>) => Client; health: new (address: string, creds: ReturnType<typeof credentials.createInsecure>) => Client } {
  const definition = loadSync(['grpc_service.proto', 'health.proto'], { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: [PROTO_DIR] });
  const loaded = loadPackageDefinition(definition) as unknown as {
    inference: { GRPCInferenceService: new (address: string, creds: ReturnType<typeof credentials.createInsecure>) => Client };
    grpc: { health: { v1: { Health: new (address: string, creds: ReturnType<typeof credentials.createInsecure>) => Client } } };
  };
  return { inference: loaded.inference.GRPCInferenceService, health: loaded.grpc.health.v1.Health };
}

export class OipGrpcClient {
  readonly inference: Client;
  readonly health: Client;

  constructor(readonly address: string, options: Record<string, number> = {}) {
    const { inference, health } = load();
    const Inference = inference as unknown as new (a: string, c: ReturnType<typeof credentials.createInsecure>, o: Record<string, number>) => Client;
    this.inference = new Inference(address, credentials.createInsecure(), { 'grpc.max_send_message_length': -1, 'grpc.max_receive_message_length': -1, ...options });
    this.health = new health(address, credentials.createInsecure());
  }

  /** Calls a unary RPC; `key` travels as `authorization: Bearer …`. */
  call<T = Record<string, unknown>>(method: string, request: unknown, key?: string | null, options: { deadline?: number; metadata?: Record<string, string>; service?: 'inference' | 'health' } = {}): Promise<Answer<T>> {
    const metadata = new Metadata();
    if (key) metadata.set('authorization', `Bearer ${key}`);
    for (const [k, v] of Object.entries(options.metadata ?? {})) metadata.set(k, v);
    const client = (options.service === 'health' ? this.health : this.inference) as unknown as Record<string, UnaryMethod>;
    const fn = client[method]!.bind(client);
    return new Promise((resolve) => {
      let response: T | null = null;
      let failed = false;
      const call = fn(request, metadata, options.deadline ? { deadline: options.deadline } : {}, (error, value) => {
        if (error) failed = true;
        else response = value as T;
      });
      call.on('status', (status) => setImmediate(() => resolve({ ok: !failed && status.code === 0, response, status })));
    });
  }

  close(): void {
    this.inference.close();
    this.health.close();
  }
}

/** A ModelInferRequest for fashion-cnn with these images as raw FP32 bytes. */
export function rawInfer(indices: number[], model = 'fashion-cnn', id = ''): Record<string, unknown> {
  const floats = imageFloats(indices);
  return {
    model_name: model,
    id,
    inputs: [{ name: 'image', datatype: 'FP32', shape: [indices.length, 1, 28, 28] }],
    raw_input_contents: [Buffer.from(floats.buffer, floats.byteOffset, floats.byteLength)],
  };
}

/** The same request with the values in typed contents (fp32_contents). */
export function typedInfer(indices: number[], model = 'fashion-cnn'): Record<string, unknown> {
  return {
    model_name: model,
    inputs: [{ name: 'image', datatype: 'FP32', shape: [indices.length, 1, 28, 28], contents: { fp32_contents: Array.from(imageFloats(indices)) } }],
  };
}

export function metadataValue(status: StatusObject, key: string): string | undefined {
  const value = status.metadata?.get(key)[0];
  return typeof value === 'string' ? value : undefined;
}
