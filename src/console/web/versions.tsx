/** Model versions (admin): every version the fleet knows per model (modelVersions): source, desired state, this replica's state, traffic weight, generation. */
import { useEffect, useState } from 'preact/hooks';
import { explain, gql } from './api';
import { DataTable, Message } from './components';

interface Version {
  model: string; version: string; source: string; desiredState: string; replicaStatus: string; replicaReason: string | null;
  trafficPercent: number | null; generation: number | null; appliedGeneration: number | null; digest: string | null;
}
const FIELDS = 'model version source desiredState replicaStatus replicaReason trafficPercent generation appliedGeneration digest';

export function VersionsView(props: { apiKey: string }) {
  const { apiKey } = props;
  const [versions, setVersions] = useState<Version[] | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    gql<{ models: { name: string }[] }>(apiKey, '{ models { name } }')
      .then(async (r) => {
        const names = [...new Set(r.data.models.map((m) => m.name))].sort();
        // One request: an alias per model, each asking modelVersions for it.
        const query = `query(${names.map((_, i) => `$m${i}: String!`).join(', ')}) { ${names.map((_, i) => `v${i}: modelVersions(model: $m${i}) { ${FIELDS} }`).join(' ')} }`;
        const vars = Object.fromEntries(names.map((n, i) => [`m${i}`, n]));
        const v: { data: Record<string, Version[]> } = names.length ? await gql<Record<string, Version[]>>(apiKey, query, vars) : { data: {} };
        setVersions(names.flatMap((_, i) => v.data[`v${i}`] ?? []));
        setError(null);
      })
      .catch((e: unknown) => setError(explain(e)));
  }, [apiKey]);

  const rows = versions ?? [];
  return (
    <div>
      {error && <Message kind="error">{error}</Message>}
      <p class="muted">Traffic weights split a model's requests between its READY versions (empty: the latest READY version takes them all); set them with <code>modelgate models traffic</code> or setModelTraffic.</p>
      <DataTable id="table-versions" tall caption={versions ? `${rows.length} versions of ${new Set(rows.map((r) => r.model)).size} models` : 'Loading versions…'} csvName="model-versions.csv"
        columns={[{ label: 'model' }, { label: 'version' }, { label: 'source' }, { label: 'desired' }, { label: 'this replica' }, { label: 'traffic %', numeric: true }, { label: 'generation', numeric: true }, { label: 'applied', numeric: true }, { label: 'digest' }]}
        rows={rows.map((v) => [v.model, v.version, v.source, v.desiredState, v.replicaReason ? `${v.replicaStatus}: ${v.replicaReason}` : v.replicaStatus, v.trafficPercent, v.generation, v.appliedGeneration, v.digest])}
        display={rows.map((v) => [v.model, v.version, v.source.toLowerCase(), v.desiredState.toLowerCase(), v.replicaReason ? `${v.replicaStatus}: ${v.replicaReason}` : v.replicaStatus, v.trafficPercent === null ? '—' : String(v.trafficPercent), v.generation === null ? '—' : String(v.generation), v.appliedGeneration === null ? '—' : String(v.appliedGeneration), v.digest ? `${v.digest.slice(0, 12)}…` : '—'])}
        empty="No model versions." />
    </div>
  );
}
