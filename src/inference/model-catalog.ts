/**
 * What a front door may read about the served models. Both doors (GraphQL
 * `models`/`model`, OIP's metadata, ready, config and repository routes) use
 * this port instead of reaching into the registry; InferenceService implements it.
 */
import type { ModelView } from './inference.service';

export interface ModelCatalog {
  /** Every model's name, sorted. */
  modelNames(): string[];
  /** A model at a version (default: the latest READY one, else the latest); NOT_FOUND if unknown. */
  describe(name: string, version?: string | null): ModelView;
}
