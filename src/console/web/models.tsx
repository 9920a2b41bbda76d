/**
 * Models (inference scope): status, provider, versions, stats; and a playground
 * that calls classify, with an attention map, or an OCCLUSION or RISE heatmap
 * for any image model (method, parameters and cost shown before it runs; the
 * units and money it cost after).
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { explain, gql, hasScope, type Me } from './api';
import { DataTable, Message } from './components';
import { SAMPLES } from './samples';
import { cssVar, fmt } from './util';

interface Model {
  name: string; version: string; status: string; statusReason: string | null; executionProvider: string | null; description: string;
  maxBatchSize: number; cost: number; labels: string[]; outputs: { name: string }[]; inputs: { shape: number[] }[];
  versions: { version: string; status: string; executionProvider: string | null; reason: string | null }[];
  /** null unless the key is an admin's: the counters sum every tenant's traffic. */
  stats: { requests: number; failures: number; inferences: number; executions: number; meanBatchSize: number; meanComputeMs: number; meanQueueMs: number; pending: number } | null;
}
interface Classification {
  modelName: string; modelVersion: string; executionProvider: string; timing: { totalMs: number };
  results: { predictions: { label: string; index: number; probability: number }[]; attention: number[] | null; attentionShape: number[] | null; explanation: Saliency | null }[];
}
interface Saliency { method: string; shape: number[]; data: number[]; items: number; explainedLabel: string; explainedScore: number }
interface Price { model: string; tenantId: string | null; currency: string; unitPriceMicros: string; effectiveFrom: string }
type Method = 'NONE' | 'ATTENTION' | 'OCCLUSION' | 'RISE';
interface Params { patch: number; stride: number; masks: number; maskGrid: number; seed: number }
/** What a run cost: from the usage record when the key may read it, else computed from the model's cost and price. */
interface Cost { items: number; units: number; money: string | null; billed: boolean }

const MODELS_QUERY = `{ models { name version status statusReason executionProvider description maxBatchSize cost labels outputs { name } inputs { shape }
  versions { version status executionProvider reason }
  stats { requests failures inferences executions meanBatchSize meanComputeMs meanQueueMs pending } } }`;
const CLASSIFY = `mutation($model: String!, $images: [ImageInput!]!, $topK: Int!, $explain: ExplainInput) { classify(model: $model, images: $images, topK: $topK, explain: $explain) {
  modelName modelVersion executionProvider timing { totalMs } results { predictions { label index probability } attention attentionShape
  explanation { method shape data items explainedLabel explainedScore } } } }`;
const DEFAULTS: Params = { patch: 4, stride: 2, masks: 500, maskGrid: 7, seed: 1 };

/** The model's image side (the last input axis), as the explanation's parameters are bounded by it. */
const imageSide = (m: Model | undefined) => m?.inputs[0]?.shape.at(-1) ?? 28;

/** Items one image runs: 1 + perturbations (OCCLUSION: patch positions, the last row and column touching the edge; RISE: masks). */
export function explainItems(method: Method, p: Params, side: number): number {
  if (method === 'RISE') return 1 + p.masks;
  if (method === 'OCCLUSION') {
    const perSide = Math.ceil(Math.max(0, side - p.patch) / p.stride) + 1;
    return 1 + perSide * perSide;
  }
  return 1;
}

/** The price in force now for this tenant: its own price, else the list price (latest effectiveFrom not in the future). */
function priceNow(prices: Price[], model: string, tenantId: string): Price | null {
  const now = Date.now();
  const live = prices.filter((p) => p.model === model && Date.parse(p.effectiveFrom) <= now).sort((a, b) => Date.parse(b.effectiveFrom) - Date.parse(a.effectiveFrom));
  return live.find((p) => p.tenantId === tenantId) ?? live.find((p) => p.tenantId === null) ?? null;
}

function moneyOf(units: number, price: Price | null): string | null {
  if (!price) return null;
  const micros = Math.round(units * Number(price.unitPriceMicros));
  return `${(micros / 1e6).toFixed(6)} ${price.currency}`;
}
const VIEW = 280;

function samplePng(pixelsB64: string): string {
  const bytes = Uint8Array.from(atob(pixelsB64), (c) => c.charCodeAt(0));
  const canvas = document.createElement('canvas');
  canvas.width = 28;
  canvas.height = 28;
  const ctx = canvas.getContext('2d');
  if (!ctx) throw new Error('no 2D canvas');
  const img = ctx.createImageData(28, 28);
  bytes.forEach((v, i) => img.data.set([v, v, v, 255], i * 4));
  ctx.putImageData(img, 0, 0);
  return canvas.toDataURL('image/png');
}

/** Why over 80 lines: one view's hooks (models, sample, explain) and markup read top to bottom; hooks cannot move into helpers without lifting their state. */
export function ModelsView(props: { apiKey: string; me: Me }) {
  const { apiKey, me } = props;
  const [method, setMethod] = useState<Method>('NONE');
  const [params, setParams] = useState<Params>(DEFAULTS);
  const [prices, setPrices] = useState<Price[]>([]);
  const [cost, setCost] = useState<Cost | null>(null);
  const [models, setModels] = useState<Model[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [model, setModel] = useState('');
  const [topK, setTopK] = useState(3);
  const [image, setImage] = useState<{ dataUrl: string; name: string } | null>(null);
  const [result, setResult] = useState<Classification | null>(null);
  const [busy, setBusy] = useState(false);
  const [dragging, setDragging] = useState(false);
  const canvas = useRef<HTMLCanvasElement>(null);

  const load = () =>
    gql<{ models: Model[] }>(apiKey, MODELS_QUERY)
      .then((r) => {
        setModels(r.data.models);
        setModel((m) => m || (r.data.models.find((x) => x.status === 'READY' && x.outputs.some((o) => o.name === 'attention')) ?? r.data.models[0])?.name || '');
      })
      .catch((e: unknown) => setError(explain(e)));
  useEffect(() => void load(), [apiKey]);
  useEffect(() => {
    if (!hasScope(me, 'USAGE_READ')) return;
    gql<{ prices: Price[] }>(apiKey, '{ prices { model tenantId currency unitPriceMicros effectiveFrom } }').then((r) => setPrices(r.data.prices)).catch(() => undefined);
  }, [apiKey]);
  const current = models.find((m) => m.name === model);
  const hasAttention = current?.outputs.some((o) => o.name === 'attention') ?? false;
  const side = imageSide(current);
  const items = explainItems(method, params, side);
  const units = items * (current?.cost ?? 1);
  const price = priceNow(prices, model, me.tenant.id);

  const pickFile = (file: File | undefined) => {
    if (!file) return;
    if (!/^image\/(png|jpeg|webp)$/.test(file.type)) {
      setError(`${file.name}: choose a PNG, JPEG or WebP image.`);
      return;
    }
    const reader = new FileReader();
    reader.onload = () => { setImage({ dataUrl: String(reader.result), name: file.name }); setResult(null); setError(null); };
    reader.readAsDataURL(file);
  };

  const classify = async () => {
    if (!image || !model) return;
    setBusy(true);
    try {
      // The data URL's base64 part: PNG, JPEG or WebP, as ImageInput.image takes them.
      const encoded = image.dataUrl.slice(image.dataUrl.indexOf(',') + 1);
      const explainInput = method === 'NONE' ? null
        : method === 'RISE' ? { method, masks: params.masks, maskGrid: params.maskGrid, seed: params.seed }
          : method === 'OCCLUSION' ? { method, patch: params.patch, stride: params.stride } : { method };
      const r = await gql<{ classify: Classification }>(apiKey, CLASSIFY, { model, images: [{ image: encoded }], topK, explain: explainInput });
      setResult(r.data.classify);
      setError(null);
      const ran = r.data.classify.results[0]?.explanation?.items ?? 1;
      setCost({ items: ran, units: ran * (current?.cost ?? 1), money: moneyOf(ran * (current?.cost ?? 1), price), billed: false });
      if (r.requestId && hasScope(me, 'USAGE_READ')) void billedCost(r.requestId);
      void load();
    } catch (e) {
      setError(explain(e));
    } finally {
      setBusy(false);
    }
  };

  // The usage record of the call (its id is the request id) says what was billed; records are written in batches, so it is looked for a few times.
  const billedCost = async (requestId: string) => {
    for (let i = 0; i < 10; i++) {
      await new Promise((done) => setTimeout(done, 500));
      try {
        const r = await gql<{ usageRecords: { edges: { node: { id: string; items: number; computeUnits: number; spend: { amount: string; currency: string } | null } }[] } }>(apiKey,
          'query($f: UsageRecordFilter) { usageRecords(first: 10, filter: $f) { edges { node { id items computeUnits spend { amount currency } } } } }', { f: { apiKeyId: me.apiKey.id } });
        const rec = r.data.usageRecords.edges.map((e) => e.node).find((n) => n.id === requestId);
        if (rec) {
          setCost({ items: rec.items, units: rec.computeUnits, money: rec.spend ? `${rec.spend.amount} ${rec.spend.currency}` : null, billed: true });
          return;
        }
      } catch {
        return;
      }
    }
  };

  // Draws the image, then the attention grid over it (a red overlay whose opacity follows the weight).
  useEffect(() => {
    const el = canvas.current;
    const ctx = el?.getContext('2d');
    if (!el || !ctx || !image) return;
    const img = new Image();
    img.onload = () => {
      ctx.imageSmoothingEnabled = false;
      ctx.clearRect(0, 0, VIEW, VIEW);
      ctx.drawImage(img, 0, 0, VIEW, VIEW);
      el.dataset['drawn'] = 'image';
      const map = overlayOf(result);
      if (!map) return;
      const [rows = 1, cols = map.data.length] = map.shape.length >= 2 ? map.shape.slice(-2) : [Math.round(Math.sqrt(map.data.length)), Math.round(Math.sqrt(map.data.length))];
      const max = Math.max(...map.data, 1e-9);
      ctx.fillStyle = cssVar('--heat') || 'rgb(255,0,0)';
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < cols; c++) {
          ctx.globalAlpha = 0.65 * ((map.data[r * cols + c] ?? 0) / max);
          ctx.fillRect((c * VIEW) / cols, (r * VIEW) / rows, VIEW / cols, VIEW / rows);
        }
      }
      ctx.globalAlpha = 1;
      el.dataset['drawn'] = map.method.toLowerCase();
    };
    img.src = image.dataUrl;
  }, [image, result]);

  const top = result?.results[0];
  const overlay = overlayOf(result);
  const peak = overlay ? overlay.data.indexOf(Math.max(...overlay.data)) : -1;
  const cols = overlay?.shape.at(-1) ?? 1;
  const num = (name: keyof Params, label: string, min: number, max: number) => (
    <label>{label} <input type="number" min={min} max={max} step="1" value={params[name]} data-testid={`explain-${name}`}
      onInput={(e) => { const v = Number(e.currentTarget.value); if (Number.isInteger(v) && v >= min && v <= max) setParams((p) => ({ ...p, [name]: v })); }} /></label>
  );

  return (
    <div>
      {error && <Message kind="error">{error}</Message>}
      <section aria-labelledby="models-title">
        <h2 id="models-title">Models</h2>
        <DataTable id="table-models" caption={`${models.length} models (stats, for admin keys only, since this gateway process loaded them)`} csvName="models.csv"
          columns={[{ label: 'model' }, { label: 'version' }, { label: 'status' }, { label: 'provider' }, { label: 'versions' }, { label: 'requests', numeric: true }, { label: 'failures', numeric: true }, { label: 'items', numeric: true }, { label: 'mean batch', numeric: true }, { label: 'mean compute ms', numeric: true }, { label: 'cost/item', numeric: true }]}
          rows={models.map((m) => [m.name, m.version, m.statusReason ? `${m.status}: ${m.statusReason}` : m.status, m.executionProvider, m.versions.map((v) => `${v.version} ${v.status}${v.executionProvider ? ` ${v.executionProvider}` : ''}`).join('; '),
            m.stats?.requests ?? null, m.stats?.failures ?? null, m.stats?.inferences ?? null, m.stats ? Number(m.stats.meanBatchSize.toFixed(2)) : null, m.stats ? Number(m.stats.meanComputeMs.toFixed(3)) : null, m.cost])} />
      </section>

      <section aria-labelledby="playground-title">
        <h2 id="playground-title">Playground</h2>
        <form class="controls" onSubmit={(e) => { e.preventDefault(); void classify(); }}>
          <label>Model
            <select value={model} onChange={(e) => { setModel(e.currentTarget.value); setResult(null); }} data-testid="playground-model">
              {models.map((m) => <option value={m.name} disabled={m.status !== 'READY'}>{m.name}{m.outputs.some((o) => o.name === 'attention') ? ' (attention map)' : ''}{m.status !== 'READY' ? ` (${m.status})` : ''}</option>)}
            </select>
          </label>
          <label>Top k <input type="number" min="1" max="10" value={topK} onInput={(e) => setTopK(Number(e.currentTarget.value) || 1)} /></label>
          <label>Explanation
            <select value={method} onChange={(e) => { setMethod(e.currentTarget.value as Method); setResult(null); setCost(null); }} data-testid="explain-method">
              <option value="NONE">none (predictions only)</option>
              <option value="ATTENTION" disabled={!hasAttention}>attention map{hasAttention ? '' : ' (this model has none)'}</option>
              <option value="OCCLUSION">occlusion heatmap</option>
              <option value="RISE">RISE heatmap</option>
            </select>
          </label>
          {method === 'OCCLUSION' && <>{num('patch', 'Patch side (px)', 1, side)}{num('stride', 'Stride (px)', 1, side)}</>}
          {method === 'RISE' && <>{num('masks', 'Masks', 1, 4000)}{num('maskGrid', 'Grid cells per side', 2, side)}{num('seed', 'Seed', 0, 2147483647)}</>}
          <button type="submit" disabled={!image || !model || busy}>{busy ? 'Running…' : method === 'NONE' || method === 'ATTENTION' ? 'Classify' : 'Classify and explain'}</button>
        </form>
        <p data-testid="explain-cost" aria-live="polite">
          {method === 'OCCLUSION' && `Occlusion slides a ${params.patch} px patch every ${params.stride} px over the ${side}×${side} input; saliency is the drop in the class score. `}
          {method === 'RISE' && `RISE scores ${params.masks} random masks on a ${params.maskGrid}×${params.maskGrid} grid (seed ${params.seed}); saliency is the score-weighted mean mask. `}
          Cost before running: {items.toLocaleString('en-US')} item{items === 1 ? '' : 's'} × {current?.cost ?? 1} unit{(current?.cost ?? 1) === 1 ? '' : 's'} = <strong>{units.toLocaleString('en-US')} compute units</strong>
          {price ? <>, about <strong>{moneyOf(units, price)}</strong> at {(Number(price.unitPriceMicros) / 1e6).toFixed(6)} {price.currency} per unit</> : hasScope(me, 'USAGE_READ') ? ', no price set for this model' : ''}.
        </p>
        <div class={`drop${dragging ? ' dragging' : ''}`} data-testid="dropzone"
          onDragOver={(e) => { e.preventDefault(); setDragging(true); }} onDragLeave={() => setDragging(false)}
          onDrop={(e) => { e.preventDefault(); setDragging(false); pickFile(e.dataTransfer?.files[0]); }}>
          <label>Drop an image here, or choose one <input type="file" accept="image/png,image/jpeg,image/webp" onChange={(e) => pickFile(e.currentTarget.files?.[0])} data-testid="file-input" /></label>
          <fieldset>
            <legend>Or pick a test image (Fashion-MNIST)</legend>
            {SAMPLES.map((s) => (
              <button type="button" class="secondary" onClick={() => { setImage({ dataUrl: samplePng(s.pixels), name: `test image #${s.index} (${s.label})` }); setResult(null); setCost(null); }}>
                {s.label}
              </button>
            ))}
          </fieldset>
        </div>
        {image && (
          <div class="playground">
            <canvas ref={canvas} width={VIEW} height={VIEW} data-testid="playground-canvas" role="img"
              aria-label={`${image.name}${overlay && peak >= 0 ? `, with the ${overlay.method === 'ATTENTION' ? 'attention map' : `${overlay.method} heatmap`} drawn over it; strongest at row ${Math.floor(peak / cols) + 1}, column ${(peak % cols) + 1}` : ''}`} />
            {result && top && (
              <div>
                <p>{result.modelName} v{result.modelVersion} on {result.executionProvider}, {fmt(result.timing.totalMs, 2)} ms</p>
                <ol data-testid="predictions" aria-label="Predictions, most likely first">
                  {top.predictions.map((p) => (
                    <li><span class="pred-label">{p.label}</span> <meter min={0} max={1} value={p.probability} aria-label={`${p.label} probability`} /> {(p.probability * 100).toFixed(1)}%</li>
                  ))}
                </ol>
                {top.explanation && <p data-testid="explained">{top.explanation.method} heatmap of “{top.explanation.explainedLabel}” (score {top.explanation.explainedScore.toFixed(3)})</p>}
                {!overlay && <p>This model has no attention output, so no map is drawn: choose an occlusion or RISE explanation for a heatmap.</p>}
                {cost && (
                  <p data-testid="run-cost">{cost.billed ? 'Billed' : 'This call costs'}: {cost.items.toLocaleString('en-US')} item{cost.items === 1 ? '' : 's'}, {cost.units.toLocaleString('en-US')} compute units{cost.money ? `, ${cost.money}` : ''}{cost.billed ? ' (from its usage record)' : ''}.</p>
                )}
              </div>
            )}
          </div>
        )}
      </section>
    </div>
  );
}

/** What is drawn over the image: the explanation (OCCLUSION, RISE, ATTENTION asked for), else the model's own attention output. */
function overlayOf(result: Classification | null): { method: string; data: number[]; shape: number[] } | null {
  const first = result?.results[0];
  if (first?.explanation) return first.explanation;
  if (first?.attention && first.attentionShape) return { method: 'ATTENTION', data: first.attention, shape: first.attentionShape };
  return null;
}
