/**
 * What a usage record stores as the model: the name when the gateway serves
 * a model of that name, else one fixed marker. A client-chosen string (a
 * pasted API key, random names) then never reaches UsageRecord or the
 * rollups, and cannot add rollup groups.
 */
export const UNKNOWN_MODEL = '(unknown)';

export function usageModelName(name: string, isKnown: (name: string) => boolean): string {
  return isKnown(name) ? name : UNKNOWN_MODEL;
}
