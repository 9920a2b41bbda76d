/**
 * Webhooks (keys:manage: own tenant; admin: any): endpoints with their event
 * types and thresholds, create, pause, edit, rotate the signing secret (shown
 * once), delete; the delivery log with redeliver.
 */
import { useEffect, useState } from 'preact/hooks';
import { explain, gql, hasScope, type Me } from './api';
import { ConfirmDialog, DataTable, Message, SecretOnce } from './components';
import { fmtTime } from './util';

interface Webhook { id: string; url: string; events: string[]; thresholds: number[]; enabled: boolean; secretPrefix: string; tenantId: string; createdAt: string; updatedAt: string }
interface Delivery { id: string; webhookId: string; eventId: string; eventType: string; url: string; status: string; attempts: number; lastStatusCode: number | null; lastError: string | null; createdAt: string; lastAttemptAt: string | null; deliveredAt: string | null; nextAttemptAt: string }

const EVENTS = ['quota.threshold', 'budget.threshold', 'credits.exhausted', 'key.expiring', 'key.revoked', 'ratelimit.breached'];
const WEBHOOK_FIELDS = 'id url events thresholds enabled secretPrefix tenantId createdAt updatedAt';
const DELIVERY_FIELDS = 'id webhookId eventId eventType url status attempts lastStatusCode lastError createdAt lastAttemptAt deliveredAt nextAttemptAt';

function readForm(form: HTMLFormElement): { url: string; events: string[]; thresholds: number[] } {
  const f = new FormData(form);
  const thresholds = String(f.get('thresholds') ?? '').split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  if (thresholds.some((t) => !Number.isInteger(t) || t < 1 || t > 100)) throw new Error('Thresholds are whole percentages from 1 to 100, comma-separated.');
  return { url: String(f.get('url') ?? '').trim(), events: f.getAll('event').map(String), thresholds };
}

function WebhookFields(props: { hook: Webhook | null; prefix: string }) {
  const h = props.hook;
  return (
    <>
      <label>Receiver URL (http:// or https://) <input name="url" type="url" required defaultValue={h?.url ?? ''} data-testid={`${props.prefix}-url`} /></label>
      <fieldset>
        <legend>Event types (none checked: all)</legend>
        {EVENTS.map((e) => <label class="inline"><input type="checkbox" name="event" value={e} defaultChecked={h?.events.includes(e) ?? false} /> {e}</label>)}
      </fieldset>
      <label>Thresholds, % of a quota or budget (comma-separated) <input name="thresholds" defaultValue={(h?.thresholds ?? [80, 90, 100]).join(', ')} /></label>
    </>
  );
}

/** Why over 80 lines: endpoints, their dialogs and the delivery log share one set of hooks (the log follows the selected endpoint). */
export function WebhooksView(props: { apiKey: string; me: Me }) {
  const { apiKey, me } = props;
  const isAdmin = hasScope(me, 'ADMIN');
  const [tenants, setTenants] = useState<{ id: string; name: string }[]>([]);
  const [tenant, setTenant] = useState(me.tenant.id);
  const [hooks, setHooks] = useState<Webhook[]>([]);
  const [deliveries, setDeliveries] = useState<Delivery[]>([]);
  const [status, setStatus] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const [secret, setSecret] = useState<{ value: string; what: string } | null>(null);
  const [editing, setEditing] = useState<Webhook | null>(null);
  const [confirm, setConfirm] = useState<{ kind: 'rotate' | 'delete'; hook: Webhook } | null>(null);
  const [reload, setReload] = useState(0);

  useEffect(() => {
    if (!isAdmin) return;
    gql<{ tenants: { edges: { node: { id: string; name: string } }[] } }>(apiKey, '{ tenants(first: 100) { edges { node { id name } } } }')
      .then((r) => setTenants(r.data.tenants.edges.map((e) => e.node))).catch(() => undefined);
  }, [apiKey]);
  useEffect(() => {
    gql<{ webhooks: Webhook[]; webhookDeliveries: { edges: { node: Delivery }[] } }>(apiKey,
      `query($tenant: String, $status: WebhookDeliveryStatus) { webhooks(tenant: $tenant) { ${WEBHOOK_FIELDS} }
        webhookDeliveries(tenant: $tenant, status: $status, first: 50) { edges { node { ${DELIVERY_FIELDS} } } } }`,
      { tenant, ...(status ? { status } : {}) })
      .then((r) => { setHooks(r.data.webhooks); setDeliveries(r.data.webhookDeliveries.edges.map((e) => e.node)); setError(null); })
      .catch((e: unknown) => setError(explain(e)));
  }, [apiKey, tenant, status, reload]);

  const run = async (what: () => Promise<string | null>) => {
    try {
      setNote(await what());
      setError(null);
      setReload((n) => n + 1);
    } catch (e) {
      setError(e instanceof Error && !('code' in e) ? e.message : explain(e));
    }
  };
  const create = (form: HTMLFormElement) => run(async () => {
    const input = { ...readForm(form), tenant };
    const r = await gql<{ createWebhook: { secret: string; webhook: Webhook } }>(apiKey, `mutation($input: CreateWebhookInput!) { createWebhook(input: $input) { secret webhook { ${WEBHOOK_FIELDS} } } }`, { input });
    setSecret({ value: r.data.createWebhook.secret, what: `the webhook to ${r.data.createWebhook.webhook.url}` });
    form.reset();
    return `Added a webhook to ${r.data.createWebhook.webhook.url}.`;
  });
  const update = (hook: Webhook, input: Record<string, unknown>) => run(async () => {
    await gql(apiKey, 'mutation($id: ID!, $input: UpdateWebhookInput!) { updateWebhook(id: $id, input: $input) { id } }', { id: hook.id, input });
    setEditing(null);
    return `Saved the webhook to ${String(input['url'] ?? hook.url)}.`;
  });
  const act = () => {
    if (!confirm) return;
    const { kind, hook } = confirm;
    setConfirm(null);
    void run(async () => {
      if (kind === 'delete') {
        await gql(apiKey, 'mutation($id: ID!) { deleteWebhook(id: $id) }', { id: hook.id });
        return `Deleted the webhook to ${hook.url} and its delivery log.`;
      }
      const r = await gql<{ rotateWebhookSecret: { secret: string } }>(apiKey, 'mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret } }', { id: hook.id });
      setSecret({ value: r.data.rotateWebhookSecret.secret, what: `the webhook to ${hook.url}` });
      return `Rotated the signing secret of ${hook.url}: the old one no longer signs.`;
    });
  };
  const redeliver = (d: Delivery) => run(async () => {
    const r = await gql<{ redeliverWebhookEvent: Delivery }>(apiKey, `mutation($id: ID!) { redeliverWebhookEvent(deliveryId: $id) { ${DELIVERY_FIELDS} } }`, { id: d.id });
    return `Redelivery of ${d.eventType} ${d.eventId}: ${r.data.redeliverWebhookEvent.status.toLowerCase()}.`;
  });

  return (
    <div>
      {error && <Message kind="error">{error}</Message>}
      {note && <Message kind="ok" testid="webhook-note">{note}</Message>}
      {secret && <SecretOnce secret={secret.value} what={secret.what} onDone={() => setSecret(null)} />}
      {isAdmin && (
        <div class="controls">
          <label>Tenant
            <select value={tenant} onChange={(e) => setTenant(e.currentTarget.value)} data-testid="webhooks-tenant">
              <option value={me.tenant.id}>{me.tenant.name} (yours)</option>
              {tenants.filter((t) => t.id !== me.tenant.id).map((t) => <option value={t.id}>{t.name}</option>)}
            </select>
          </label>
        </div>
      )}
      <section aria-labelledby="hooks-title">
        <h2 id="hooks-title">Endpoints</h2>
        <DataTable id="table-webhooks" caption={`${hooks.length} webhooks`}
          columns={[{ label: 'url' }, { label: 'events' }, { label: 'thresholds %' }, { label: 'state' }, { label: 'secret' }, { label: 'changed' }, { label: 'actions' }]}
          rows={hooks.map((h) => [h.url, h.events.join(' '), h.thresholds.join(' '), h.enabled ? 'enabled' : 'paused', h.secretPrefix, h.updatedAt, null])}
          display={hooks.map((h) => [h.url, h.events.length ? h.events.join(', ') : 'all', h.thresholds.join(', '), h.enabled ? 'enabled' : 'paused', `${h.secretPrefix}…`, fmtTime(h.updatedAt),
            <span class="row">
              <button type="button" class="secondary" onClick={() => setEditing(h)}>Edit<span class="sr-only"> {h.url}</span></button>
              <button type="button" class="secondary" onClick={() => void update(h, { enabled: !h.enabled })}>{h.enabled ? 'Pause' : 'Resume'}<span class="sr-only"> {h.url}</span></button>
              <button type="button" class="secondary" onClick={() => setConfirm({ kind: 'rotate', hook: h })}>Rotate secret<span class="sr-only"> of {h.url}</span></button>
              <button type="button" class="danger" onClick={() => setConfirm({ kind: 'delete', hook: h })}>Delete<span class="sr-only"> {h.url}</span></button>
            </span>])}
          empty="No webhooks yet." />
      </section>
      {editing && (
        <section aria-labelledby="edit-hook-title">
          <h2 id="edit-hook-title">Edit the webhook to {editing.url}</h2>
          <form class="stack" key={editing.id} onSubmit={(e) => { e.preventDefault(); try { void update(editing, readForm(e.currentTarget)); } catch (err) { setError(String((err as Error).message)); } }}>
            <WebhookFields hook={editing} prefix="edit-hook" />
            <div class="row"><button type="submit">Save webhook</button><button type="button" class="secondary" onClick={() => setEditing(null)}>Cancel</button></div>
          </form>
        </section>
      )}
      <section aria-labelledby="add-hook-title">
        <h2 id="add-hook-title">Add a webhook</h2>
        <form class="stack" onSubmit={(e) => { e.preventDefault(); void create(e.currentTarget); }}>
          <WebhookFields hook={null} prefix="hook" />
          <button type="submit">Add webhook</button>
        </form>
      </section>
      <section aria-labelledby="deliveries-title">
        <h2 id="deliveries-title">Delivery log</h2>
        <div class="controls">
          <label>Status
            <select value={status} onChange={(e) => setStatus(e.currentTarget.value)} data-testid="deliveries-status">
              <option value="">any</option><option value="PENDING">pending</option><option value="DELIVERED">delivered</option><option value="FAILED">failed</option>
            </select>
          </label>
          <button type="button" class="secondary" onClick={() => setReload((n) => n + 1)}>Refresh the log</button>
        </div>
        <DataTable id="table-deliveries" tall caption={`${deliveries.length} latest deliveries`}
          columns={[{ label: 'event' }, { label: 'event id' }, { label: 'url' }, { label: 'status' }, { label: 'attempts', numeric: true }, { label: 'last answer' }, { label: 'last attempt' }, { label: 'actions' }]}
          rows={deliveries.map((d) => [d.eventType, d.eventId, d.url, d.status, d.attempts, d.lastStatusCode !== null ? `HTTP ${d.lastStatusCode}` : d.lastError, d.lastAttemptAt, null])}
          display={deliveries.map((d) => [d.eventType, d.eventId, d.url, d.status.toLowerCase(), String(d.attempts), d.lastStatusCode !== null ? `HTTP ${d.lastStatusCode}` : d.lastError ?? '—', fmtTime(d.lastAttemptAt),
            d.status === 'PENDING' ? 'waiting' : <button type="button" class="secondary" onClick={() => void redeliver(d)}>Redeliver<span class="sr-only"> {d.eventType} {d.id}</span></button>])}
          empty="No deliveries." />
      </section>
      {confirm && (
        <ConfirmDialog title={confirm.kind === 'delete' ? `Delete the webhook to ${confirm.hook.url}?` : `Rotate the secret of ${confirm.hook.url}?`}
          confirmLabel={confirm.kind === 'delete' ? 'Delete webhook' : 'Rotate secret'} danger={confirm.kind === 'delete'} onCancel={() => setConfirm(null)} onConfirm={act}>
          <p>{confirm.kind === 'delete' ? 'Its delivery log goes with it.' : 'The new secret signs every delivery from now on; update the receiver.'}</p>
        </ConfirmDialog>
      )}
    </div>
  );
}
