/**
 * Model versions (admin; models:manage: its tenant's private models): every version the fleet knows per
 * model (modelVersions): source, desired state, this replica's state, traffic weight, shadow figures,
 * generation; each live replica's state of each version; and, for a session that may change serving
 * (admin or models:manage), the traffic split, the shadow and rollback (confirmed first).
 */
import { useEffect, useState } from 'preact/hooks';
import { explain, gql, hasScope, type Me } from './api';
import { ConfirmDialog, DataTable, Message } from './components';
import { fmt } from './util';

interface Replica { replica: string; host: string; pid: number; status: string; reason: string | null; generation: number; appliedGeneration: number | null; lagging: boolean }
interface Version {
  model: string; version: string; source: string; desiredState: string; replicaStatus: string; replicaReason: string | null;
  trafficPercent: number | null; generation: number | null; appliedGeneration: number | null; digest: string | null;
  shadowPercent: number | null; shadowRuns: number; shadowSkipped: number; shadowFailures: number; shadowTop1Agreement: number | null; shadowMaxAbsDifference: number | null;
  replicas: Replica[];
}
const FIELDS = `model version source desiredState replicaStatus replicaReason trafficPercent generation appliedGeneration digest
  shadowPercent shadowRuns shadowSkipped shadowFailures shadowTop1Agreement shadowMaxAbsDifference
  replicas { replica host pid status reason generation appliedGeneration lagging }`;

const plural = (n: number, noun: string) => `${n} ${noun}${n === 1 ? '' : 's'}`;
const dash = (n: number | null) => (n === null ? '—' : String(n));
const agreement = (v: Version) => (v.shadowTop1Agreement === null ? '—' : `${(v.shadowTop1Agreement * 100).toFixed(1)} %`);

interface Done { kind: 'ok' | 'error'; text: string }

/** Why over 80 lines: the load, the three changes and the tables share one set of hooks. */
export function VersionsView(props: { apiKey: string; me: Me }) {
  const { apiKey, me } = props;
  // modelVersions and the changes take the same scope: a session that reads versions here may change them.
  const canManage = hasScope(me, 'ADMIN') || hasScope(me, 'MODELS_MANAGE');
  const [versions, setVersions] = useState<Version[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [selected, setSelected] = useState('');
  const [done, setDone] = useState<Done | null>(null);
  const [confirming, setConfirming] = useState(false);
  const [reload, setReload] = useState(0);

  useEffect(() => {
    gql<{ models: { name: string }[] }>(apiKey, '{ models { name } }')
      .then(async (r) => {
        // A models:manage key reads only its tenant's private models (named "<tenant id>.…").
        const own = `${me.tenant.id.toLowerCase()}.`;
        const names = [...new Set(r.data.models.map((m) => m.name))].filter((n) => hasScope(me, 'ADMIN') || n.toLowerCase().startsWith(own)).sort();
        // One request: an alias per model, each asking modelVersions for it.
        const query = `query(${names.map((_, i) => `$m${i}: String!`).join(', ')}) { ${names.map((_, i) => `v${i}: modelVersions(model: $m${i}) { ${FIELDS} }`).join(' ')} }`;
        const vars = Object.fromEntries(names.map((n, i) => [`m${i}`, n]));
        const v: { data: Record<string, Version[]> } = names.length ? await gql<Record<string, Version[]>>(apiKey, query, vars) : { data: {} };
        const all = names.flatMap((_, i) => v.data[`v${i}`] ?? []);
        setVersions(all);
        setSelected((s) => (s && all.some((x) => x.model === s) ? s : all[0]?.model ?? ''));
        setError(null);
      })
      .catch((e: unknown) => setError(explain(e)));
  }, [apiKey, reload]);

  /** Runs one change; its answer (or the gateway's refusal, e.g. a split not summing to 100) is shown, then everything reloads. */
  const change = async (what: string, query: string, variables: Record<string, unknown>) => {
    try {
      const r = await gql<Record<string, Version[]>>(apiKey, query, variables);
      setDone({ kind: 'ok', text: `${what} (request ${r.requestId ?? 'unknown'}).` });
      setReload((n) => n + 1);
    } catch (e) {
      setDone({ kind: 'error', text: `${what} refused: ${explain(e)}` });
    }
  };

  const rows = versions ?? [];
  const models = [...new Set(rows.map((r) => r.model))];
  const mine = rows.filter((r) => r.model === selected);
  const replicaRows = rows.flatMap((v) => v.replicas.map((p) => ({ v, p })));
  const shadow = mine.find((v) => v.shadowPercent !== null) ?? null;

  return (
    <div>
      {error && <Message kind="error">{error}</Message>}
      <p class="muted">Traffic weights split a model's requests that name no version between its versions (none set: the latest READY version takes them all). A shadow version also runs a share of the served requests, off the request path, and is compared with the serving one (never answered or billed).</p>
      <DataTable id="table-versions" tall caption={versions ? `${plural(rows.length, 'version')} of ${plural(models.length, 'model')}` : 'Loading versions…'} csvName="model-versions.csv"
        columns={[{ label: 'model' }, { label: 'version' }, { label: 'source' }, { label: 'desired' }, { label: 'this replica' }, { label: 'traffic %', numeric: true }, { label: 'generation', numeric: true }, { label: 'applied', numeric: true }, { label: 'digest' },
          { label: 'shadow %', numeric: true }, { label: 'shadow runs', numeric: true }, { label: 'top-1 agreement', numeric: true }, { label: 'max abs difference', numeric: true }]}
        rows={rows.map((v) => [v.model, v.version, v.source, v.desiredState, v.replicaReason ? `${v.replicaStatus}: ${v.replicaReason}` : v.replicaStatus, v.trafficPercent, v.generation, v.appliedGeneration, v.digest,
          v.shadowPercent, v.shadowPercent === null ? null : v.shadowRuns, v.shadowTop1Agreement, v.shadowMaxAbsDifference])}
        display={rows.map((v) => [v.model, v.version, v.source.toLowerCase(), v.desiredState.toLowerCase(), v.replicaReason ? `${v.replicaStatus}: ${v.replicaReason}` : v.replicaStatus, dash(v.trafficPercent), dash(v.generation), dash(v.appliedGeneration), v.digest ? `${v.digest.slice(0, 12)}…` : '—',
          dash(v.shadowPercent), v.shadowPercent === null ? '—' : fmt(v.shadowRuns), agreement(v), v.shadowMaxAbsDifference === null ? '—' : v.shadowMaxAbsDifference.toPrecision(3)])}
        empty="No model versions." />

      <h2 id="replicas-title">Each replica's state</h2>
      <DataTable id="table-replicas" caption={`${replicaRows.length} version states on ${plural(new Set(replicaRows.map((r) => r.p.replica)).size, 'live replica')}, as each last reported`} csvName="model-replicas.csv"
        columns={[{ label: 'model' }, { label: 'version' }, { label: 'replica' }, { label: 'host' }, { label: 'state' }, { label: 'generation', numeric: true }, { label: 'applied', numeric: true }, { label: 'lagging' }]}
        rows={replicaRows.map(({ v, p }) => [v.model, v.version, p.replica, `${p.host}:${p.pid}`, p.reason ? `${p.status}: ${p.reason}` : p.status, p.generation, p.appliedGeneration, p.lagging ? 'yes' : 'no'])}
        display={replicaRows.map(({ v, p }) => [v.model, v.version, <code>{p.replica.slice(0, 8)}</code>])}
        empty="No replica has reported yet." />

      {models.length > 0 && (
        <section aria-labelledby="manage-title" data-testid="versions-manage">
          <h2 id="manage-title">{canManage ? 'Traffic, shadow and rollback' : 'Traffic and shadow'}</h2>
          <label>Model{' '}
            <select value={selected} onChange={(e) => { setSelected(e.currentTarget.value); setDone(null); }} data-testid="versions-model">
              {models.map((m) => <option value={m}>{m}</option>)}
            </select>
          </label>
          {done && <Message kind={done.kind} testid="versions-result">{done.text}</Message>}
          <p data-testid="shadow-figures">{shadow
            ? `Shadow: version ${shadow.version} runs ${shadow.shadowPercent} % of served requests; on this replica ${fmt(shadow.shadowRuns)} compared, ${fmt(shadow.shadowSkipped)} skipped, ${fmt(shadow.shadowFailures)} failed; top-1 agreement ${agreement(shadow)}, largest difference ${shadow.shadowMaxAbsDifference === null ? '—' : shadow.shadowMaxAbsDifference.toPrecision(3)}.`
            : 'No shadow version.'}</p>
          {canManage && (
            <>
              <form class="controls" key={`traffic-${selected}-${reload}`} aria-labelledby="traffic-title" data-testid="traffic-form" onSubmit={(e) => {
                e.preventDefault();
                const f = new FormData(e.currentTarget);
                // Empty fields are left out (those versions get none); the gateway checks the sum.
                const weights = mine.map((v) => ({ version: v.version, text: String(f.get(`percent-${v.version}`) ?? '').trim() })).filter((w) => w.text !== '').map((w) => ({ version: w.version, percent: Number(w.text) }));
                void change(weights.length ? `Traffic of ${selected} set to ${weights.map((w) => `${w.version}=${w.percent}`).join(' ')}` : `Traffic split of ${selected} cleared`,
                  'mutation($m: String!, $w: [VersionWeightInput!]!) { setModelTraffic(model: $m, weights: $w) { version } }', { m: selected, w: weights });
              }}>
                <h3 id="traffic-title">Traffic split</h3>
                {mine.map((v) => (
                  <label>Version {v.version} %{' '}
                    <input name={`percent-${v.version}`} type="number" min="0" max="100" step="1" size={4} defaultValue={v.trafficPercent === null ? '' : String(v.trafficPercent)} data-testid={`traffic-${v.version}`} />
                  </label>
                ))}
                <button type="submit">Save traffic split</button>
              </form>
              <form class="controls" key={`shadow-${selected}-${reload}`} aria-labelledby="shadow-title" data-testid="shadow-form" onSubmit={(e) => {
                e.preventDefault();
                const f = new FormData(e.currentTarget);
                const version = String(f.get('version') ?? '');
                const percent = Number(f.get('percent'));
                void change(percent === 0 ? `Shadow of ${selected} cleared` : `Version ${version} of ${selected} shadows ${percent} %`,
                  'mutation($m: String!, $v: String!, $p: Int!) { setModelShadow(model: $m, version: $v, percent: $p) { version } }', { m: selected, v: version, p: percent });
              }}>
                <h3 id="shadow-title">Shadow</h3>
                <label>Candidate version{' '}
                  <select name="version" data-testid="shadow-version">
                    {/* The current shadow, else the newest version, is preselected (an option's `selected`: Preact sets no select defaultValue). */}
                    {mine.map((v) => <option value={v.version} selected={v.version === (shadow?.version ?? mine[mine.length - 1]?.version)}>{v.version}</option>)}
                  </select>
                </label>
                <label>Percent (0 clears){' '}
                  <input name="percent" type="number" min="0" max="100" step="1" size={4} required defaultValue={String(shadow?.shadowPercent ?? 0)} data-testid="shadow-percent" />
                </label>
                <button type="submit">Set shadow</button>
              </form>
              <p>
                <button type="button" class="danger" onClick={() => setConfirming(true)}>Roll back {selected}</button>{' '}
                <span class="muted">Restores the serving state from before the model's last serving change (publish, load, unload, reload, traffic split) on every replica; a second rollback undoes the first.</span>
              </p>
              {confirming && (
                <ConfirmDialog title={`Roll back ${selected}?`} confirmLabel="Roll back" danger onCancel={() => setConfirming(false)}
                  onConfirm={() => { setConfirming(false); void change(`${selected} rolled back`, 'mutation($m: String!) { rollbackModel(model: $m) { version } }', { m: selected }); }}>
                  <p>Every replica goes back to the versions, weights and split {selected} served before its last serving change.</p>
                </ConfirmDialog>
              )}
            </>
          )}
        </section>
      )}
    </div>
  );
}
