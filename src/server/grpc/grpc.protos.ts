/**
 * Triton's own protocol files (vendored under proto/triton with their
 * licence), loaded at start by @grpc/proto-loader: the OIP service
 * (inference.GRPCInferenceService) and the standard health service.
 */
import path from 'node:path';
import type { ServiceDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

/** proto/triton at the repository root, from src/server/grpc or dist/server/grpc alike. */
export const PROTO_DIR = path.resolve(__dirname, '..', '..', '..', 'proto', 'triton');

export interface OipServices {
  inference: ServiceDefinition;
  health: ServiceDefinition;
}

/**
 * keepCase: field names as in the .proto (what every Triton client sends);
 * int64 as decimal text (no precision lost); enums by name; defaults filled
 * in so a missing repeated field reads as empty; oneofs name their choice.
 */
export function loadOipServices(): OipServices {
  const definition = loadSync(['grpc_service.proto', 'health.proto'], {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
    includeDirs: [PROTO_DIR],
  });
  // proto-loader's entries for services are service definitions (the others are message and enum descriptors).
  return {
    inference: definition['inference.GRPCInferenceService'] as ServiceDefinition,
    health: definition['grpc.health.v1.Health'] as ServiceDefinition,
  };
}
