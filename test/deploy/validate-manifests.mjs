// Validates every document of the given YAML files against the Kubernetes
// schemas of `kubernetes-models` (ESM only, hence a script the Jest test runs).
// Prints one JSON line: [{ file, kind, name, error?, skipped? }]. A custom
// resource kubernetes-models has no schema for (the ServiceMonitor) is listed
// as skipped, never as valid.
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';

const GROUPS = {
  v1: 'v1',
  'apps/v1': 'apps/v1',
  'batch/v1': 'batch/v1',
  'policy/v1': 'policy/v1',
  'autoscaling/v2': 'autoscaling/v2',
  'networking.k8s.io/v1': 'networking.k8s.io/v1',
};
const CUSTOM_RESOURCES = ['monitoring.coreos.com/v1'];
const results = [];
for (const file of process.argv.slice(2)) {
  for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
    const object = doc.toJS();
    if (!object) continue;
    const entry = { file, kind: object.kind, name: object.metadata?.name };
    if (CUSTOM_RESOURCES.includes(object.apiVersion)) {
      results.push({ ...entry, skipped: 'custom resource without a schema here' });
      continue;
    }
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
