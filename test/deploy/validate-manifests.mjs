// Validates every document of the given YAML files against the Kubernetes
// schemas of `kubernetes-models` (ESM only, hence a script the Jest test runs).
// Prints one JSON line: [{ file, kind, name, error? }].
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';

const GROUPS = { v1: 'v1', 'apps/v1': 'apps/v1', 'batch/v1': 'batch/v1', 'policy/v1': 'policy/v1' };
const results = [];
for (const file of process.argv.slice(2)) {
  for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
    const object = doc.toJS();
    if (!object) continue;
    const entry = { file, kind: object.kind, name: object.metadata?.name };
    try {
      const group = GROUPS[object.apiVersion];
      if (!group) throw new Error(`unsupported apiVersion ${object.apiVersion}`);
      const Model = (await import(`kubernetes-models/${group}`))[object.kind];
      if (!Model) throw new Error(`unknown kind ${object.kind} in ${object.apiVersion}`);
      new Model(object).validate();
    } catch (error) {
      entry.error = String(error?.message ?? error);
    }
    results.push(entry);
  }
}
process.stdout.write(`${JSON.stringify(results)}\n`);
