/**
 * Every GraphQL document the client sends, with hand-written result types.
 * Hand-typed from schema.graphql (graphql-codegen was left out to keep the
 * client dependency-free); test/clients/typescript-client.test.ts validates
 * each document against the committed schema.graphql, so a schema change
 * that breaks one fails the tests.
 */
export const INFER = /* GraphQL */ `
  mutation Infer($input: InferInput!) {
    infer(input: $input) {
      id
      modelName
      modelVersion
      executionProvider
      batchSize
      outputs { name datatype shape dataBase64 }
      timing { queueMs computeMs totalMs }
    }
  }
`;

export const CLASSIFY = /* GraphQL */ `
  mutation Classify($model: String!, $version: String, $images: [ImageInput!]!, $topK: Int!) {
    classify(model: $model, version: $version, images: $images, topK: $topK) {
      modelName
      modelVersion
      results { predictions { label index probability } }
    }
  }
`;

export const ME = /* GraphQL */ `
  query Me {
    me { scopes allowedModels expiresAt tenant { id name } }
  }
`;

export const TENANTS = /* GraphQL */ `
  query Tenants($first: Int, $after: String) {
    tenants(first: $first, after: $after) {
      edges { cursor node { id name status requestsPerMinute computeUnitsPerMinute monthlyComputeUnitQuota createdAt } }
      pageInfo { hasNextPage endCursor }
    }
  }
`;

export const API_KEYS = /* GraphQL */ `
  query ApiKeys($first: Int, $after: String, $tenant: String, $revoked: Boolean) {
    apiKeys(first: $first, after: $after, tenant: $tenant, revoked: $revoked) {
      edges { cursor node { id prefix name scopes allowedModels status expiresAt createdAt } }
      pageInfo { hasNextPage endCursor }
    }
  }
`;

export const MODELS = /* GraphQL */ `
  query Models {
    models { name version status executionProvider maxBatchSize labels }
  }
`;

export const ALL_OPERATIONS = { INFER, CLASSIFY, ME, TENANTS, API_KEYS, MODELS } as const;

export type TensorDatatype = 'BOOL' | 'UINT8' | 'INT8' | 'INT16' | 'INT32' | 'INT64' | 'FP16' | 'FP32' | 'FP64';
export type Scope = 'ADMIN' | 'INFERENCE' | 'KEYS_MANAGE' | 'USAGE_READ';

export interface InferInputTensor {
  name: string;
  datatype: TensorDatatype;
  shape: number[];
  data?: number[];
  dataBase64?: string;
}

export interface InferInput {
  model: string;
  version?: string;
  id?: string;
  inputs: InferInputTensor[];
  outputs?: string[];
  parameters?: { timeoutMs?: number; priority?: number };
}

export interface InferOutputTensor {
  name: string;
  datatype: TensorDatatype;
  shape: number[];
  dataBase64: string;
}

export interface InferResult {
  id: string | null;
  modelName: string;
  modelVersion: string;
  executionProvider: string;
  batchSize: number;
  outputs: InferOutputTensor[];
  timing: { queueMs: number; computeMs: number; totalMs: number };
}

export interface ClassPrediction {
  label: string;
  index: number;
  probability: number;
}

export interface ClassifyResult {
  modelName: string;
  modelVersion: string;
  results: { predictions: ClassPrediction[] }[];
}

export interface Me {
  scopes: Scope[];
  allowedModels: string[];
  expiresAt: string | null;
  tenant: { id: string; name: string };
}

export interface Tenant {
  id: string;
  name: string;
  status: 'ACTIVE' | 'SUSPENDED';
  requestsPerMinute: number | null;
  computeUnitsPerMinute: number | null;
  monthlyComputeUnitQuota: number | null;
  createdAt: string;
}

export interface ApiKey {
  id: string;
  prefix: string;
  name: string;
  scopes: Scope[];
  allowedModels: string[];
  status: 'ACTIVE' | 'EXPIRED' | 'GRACE' | 'REVOKED' | 'ROTATED';
  expiresAt: string | null;
  createdAt: string;
}

export interface Model {
  name: string;
  version: string;
  status: 'LOADING' | 'READY' | 'FAILED' | 'UNLOADED';
  executionProvider: string | null;
  maxBatchSize: number;
  labels: string[];
}

export interface Connection<T> {
  edges: { cursor: string; node: T }[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}
