/** Models (inference scope): status, provider, versions, stats; and a playground that calls classify. */
import { useEffect, useRef, useState } from 'preact/hooks';
import { explain, gql } from './api';
import { DataTable, Message } from './components';
import { SAMPLES } from './samples';
import { cssVar, fmt } from './util';

interface Model {
  name: string; version: string; status: string; statusReason: string | null; executionProvider: string | null; description: string;
  maxBatchSize: number; cost: number; labels: string[]; outputs: { name: string }[];
  versions: { version: string; status: string; executionProvider: string | null; reason: string | null }[];
  /** null unless the key is an admin's: the counters sum every tenant's traffic. */
  stats: { requests: number; failures: number; inferences: number; executions: number; meanBatchSize: number; meanComputeMs: number; meanQueueMs: number; pending: number } | null;
}
interface Classification {
  modelName: string; modelVersion: string; executionProvider: string; timing: { totalMs: number };
  results: { predictions: { label: string; index: number; probability: number }[]; attention: number[] | null; attentionShape: number[] | null }[];
}

const MODELS_QUERY = `{ models { name version status statusReason executionProvider description maxBatchSize cost labels outputs { name }
  versions { version status executionProvider reason }
  stats { requests failures inferences executions meanBatchSize meanComputeMs meanQueueMs pending } } }`;
const CLASSIFY = `mutation($model: String!, $images: [ImageInput!]!, $topK: Int!) { classify(model: $model, images: $images, topK: $topK) {
  modelName modelVersion executionProvider timing { totalMs } results { predictions { label index probability } attention attentionShape } } }`;
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
export function ModelsView(props: { apiKey: string }) {
  const { apiKey } = props;
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
      const r = await gql<{ classify: Classification }>(apiKey, CLASSIFY, { model, images: [{ image: encoded }], topK });
      setResult(r.data.classify);
      setError(null);
      void load();
    } catch (e) {
      setError(explain(e));
    } finally {
      setBusy(false);
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
      const first = result?.results[0];
      if (!first?.attention || !first.attentionShape) return;
      const [rows = 1, cols = first.attention.length] = first.attentionShape.length >= 2 ? first.attentionShape.slice(-2) : [Math.round(Math.sqrt(first.attention.length)), Math.round(Math.sqrt(first.attention.length))];
      const max = Math.max(...first.attention, 1e-9);
      ctx.fillStyle = cssVar('--heat') || 'rgb(255,0,0)';
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < cols; c++) {
          ctx.globalAlpha = 0.65 * ((first.attention[r * cols + c] ?? 0) / max);
          ctx.fillRect((c * VIEW) / cols, (r * VIEW) / rows, VIEW / cols, VIEW / rows);
        }
      }
      ctx.globalAlpha = 1;
      el.dataset['drawn'] = 'attention';
    };
    img.src = image.dataUrl;
  }, [image, result]);

  const top = result?.results[0];
  const att = top?.attention;
  const peak = att && top?.attentionShape ? att.indexOf(Math.max(...att)) : -1;
  const cols = top?.attentionShape?.at(-1) ?? 1;

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
          <button type="submit" disabled={!image || !model || busy}>{busy ? 'Classifying…' : 'Classify'}</button>
        </form>
        <div class={`drop${dragging ? ' dragging' : ''}`} data-testid="dropzone"
          onDragOver={(e) => { e.preventDefault(); setDragging(true); }} onDragLeave={() => setDragging(false)}
          onDrop={(e) => { e.preventDefault(); setDragging(false); pickFile(e.dataTransfer?.files[0]); }}>
          <label>Drop an image here, or choose one <input type="file" accept="image/png,image/jpeg,image/webp" onChange={(e) => pickFile(e.currentTarget.files?.[0])} data-testid="file-input" /></label>
          <fieldset>
            <legend>Or pick a test image (Fashion-MNIST)</legend>
            {SAMPLES.map((s) => (
              <button type="button" class="secondary" onClick={() => { setImage({ dataUrl: samplePng(s.pixels), name: `test image #${s.index} (${s.label})` }); setResult(null); }}>
                {s.label}
              </button>
            ))}
          </fieldset>
        </div>
        {image && (
          <div class="playground">
            <canvas ref={canvas} width={VIEW} height={VIEW} data-testid="playground-canvas" role="img"
              aria-label={`${image.name}${peak >= 0 ? `, with the attention map drawn over it; strongest at row ${Math.floor(peak / cols) + 1}, column ${(peak % cols) + 1}` : ''}`} />
            {result && top && (
              <div>
                <p>{result.modelName} v{result.modelVersion} on {result.executionProvider}, {fmt(result.timing.totalMs, 2)} ms</p>
                <ol data-testid="predictions" aria-label="Predictions, most likely first">
                  {top.predictions.map((p) => (
                    <li><span class="pred-label">{p.label}</span> <meter min={0} max={1} value={p.probability} aria-label={`${p.label} probability`} /> {(p.probability * 100).toFixed(1)}%</li>
                  ))}
                </ol>
                {!att && <p>This model has no attention output, so no map is drawn.</p>}
              </div>
            )}
          </div>
        )}
      </section>
    </div>
  );
}
