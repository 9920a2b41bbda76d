/**
 * Execution-provider selection with fallback. onnxruntime-node rejects
 * `InferenceSession.create` when a provider cannot load (there is no automatic
 * fallback), so we try the configured providers in order and report the one
 * that actually runs the model. (Part of issue #4.)
 */
import * as ort from 'onnxruntime-node';
import type { ExecutionProviderName } from '../config';

export type ProviderName = ExecutionProviderName;

export interface SessionWithProvider {
  session: ort.InferenceSession;
  provider: ProviderName;
  /** Providers tried before this one, with why each failed. */
  fallbacks: { provider: ProviderName; reason: string }[];
}

export async function createSessionWithFallback(
  modelPath: string,
  providers: ProviderName[],
  options: { intraOpThreads: number; onFallback?: (provider: ProviderName, reason: string, next: ProviderName | undefined) => void },
): Promise<SessionWithProvider> {
  const fallbacks: { provider: ProviderName; reason: string }[] = [];
  for (let i = 0; i < providers.length; i += 1) {
    const provider = providers[i]!;
    try {
      const session = await ort.InferenceSession.create(modelPath, {
        executionProviders: [provider],
        intraOpNumThreads: options.intraOpThreads,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
      });
      return { session, provider, fallbacks };
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      fallbacks.push({ provider, reason });
      options.onFallback?.(provider, reason, providers[i + 1]);
    }
  }
  throw new Error(`no execution provider could load ${modelPath}: ${fallbacks.map((f) => `${f.provider}: ${f.reason}`).join('; ')}`);
}
