/** Shared widgets: data tables (with CSV), dialogs, status messages, the audit event panel. */
import type { ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';
import { download, toCsv, type Cell } from './util';

export interface Column {
  label: string;
  numeric?: boolean;
}

/** `tall`: the page scrolls, not a box (for the main list of a view). */
export function DataTable(props: { id: string; caption: string; columns: Column[]; rows: Cell[][]; display?: (string | ComponentChildren)[][]; csvName?: string; empty?: string; tall?: boolean }) {
  const { id, caption, columns, rows } = props;
  return (
    <div class="table-block">
      <div class={props.tall ? 'table-scroll tall' : 'table-scroll'} role="region" aria-labelledby={`${id}-caption`} tabIndex={0}>
        <table id={id} data-testid={id}>
          <caption id={`${id}-caption`}>{caption}</caption>
          <thead>
            <tr>{columns.map((c) => <th scope="col" class={c.numeric ? 'num' : undefined}>{c.label}</th>)}</tr>
          </thead>
          <tbody>
            {rows.length === 0 ? (
              <tr><td colSpan={columns.length}>{props.empty ?? 'No rows.'}</td></tr>
            ) : (
              rows.map((row, r) => (
                <tr>
                  {row.map((cell, c) => {
                    const shown = props.display?.[r]?.[c] ?? (cell === null ? '—' : typeof cell === 'number' ? cell.toLocaleString('en-US', { maximumFractionDigits: 3 }) : cell);
                    return c === 0 ? <th scope="row" data-value={cell ?? ''}>{shown}</th> : <td class={columns[c]?.numeric ? 'num' : undefined} data-value={cell ?? ''}>{shown}</td>;
                  })}
                </tr>
              ))
            )}
          </tbody>
        </table>
      </div>
      {props.csvName && (
        <button type="button" class="secondary" onClick={() => download(props.csvName ?? 'table.csv', toCsv(columns.map((c) => c.label), rows))}>
          Download CSV<span class="sr-only"> of {caption}</span>
        </button>
      )}
    </div>
  );
}

export function Message(props: { kind: 'error' | 'info' | 'ok'; children: ComponentChildren; testid?: string }) {
  return (
    <div class={`msg msg-${props.kind}`} role={props.kind === 'error' ? 'alert' : 'status'} data-testid={props.testid}>
      {props.children}
    </div>
  );
}

/** A native modal <dialog>: focus is trapped and Escape cancels, as browsers implement it. */
export function ConfirmDialog(props: { title: string; confirmLabel: string; danger?: boolean; onConfirm: () => void; onCancel: () => void; children: ComponentChildren }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
    return () => dialog?.close();
  }, []);
  return (
    <dialog ref={ref} aria-labelledby="dialog-title" onCancel={(e) => { e.preventDefault(); props.onCancel(); }}>
      <form method="dialog" onSubmit={(e) => { e.preventDefault(); props.onConfirm(); }}>
        <h2 id="dialog-title">{props.title}</h2>
        {props.children}
        <div class="row">
          <button type="button" class="secondary" onClick={props.onCancel}>Cancel</button>
          <button type="submit" class={props.danger ? 'danger' : undefined}>{props.confirmLabel}</button>
        </div>
      </form>
    </dialog>
  );
}

export interface AuditEvent {
  id: string;
  action: string;
  actor: string;
  targetType: string;
  targetId: string | null;
  createdAt: string;
  requestId: string | null;
  before: unknown;
  after: unknown;
}

export const AUDIT_FIELDS = 'id action actor targetType targetId createdAt requestId before after';

export function AuditPanel(props: { event: AuditEvent | null; requestId: string | null; isAdmin: boolean }) {
  const { event } = props;
  return (
    <section class="audit" aria-labelledby="audit-title" data-testid="audit-event">
      <h3 id="audit-title">Audit event written</h3>
      {event ? (
        <dl>
          <dt>Action</dt><dd data-testid="audit-action">{event.action}</dd>
          <dt>Target</dt><dd>{event.targetType} {event.targetId}</dd>
          <dt>Actor</dt><dd>{event.actor}</dd>
          <dt>At</dt><dd>{event.createdAt}</dd>
          <dt>Request id</dt><dd>{event.requestId}</dd>
          <dt>Change</dt><dd><pre>{JSON.stringify({ before: event.before, after: event.after }, null, 2)}</pre></dd>
        </dl>
      ) : (
        <p>
          Request id <code>{props.requestId ?? 'unknown'}</code>.{' '}
          {props.isAdmin ? 'The event was not found in the latest audit page.' : 'The audit trail itself is readable with an admin key.'}
        </p>
      )}
    </section>
  );
}

/** A secret shown once: held in this component's state only, gone when dismissed or on reload. */
export function SecretOnce(props: { secret: string; what: string; onDone: () => void }) {
  const input = useRef<HTMLInputElement>(null);
  const copied = useRef<HTMLSpanElement>(null);
  useEffect(() => input.current?.focus(), []);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(props.secret);
    } catch {
      // Clipboard API needs a secure context; selecting lets the person copy by hand.
      input.current?.select();
      document.execCommand('copy');
    }
    if (copied.current) copied.current.textContent = 'Copied to the clipboard.';
  };
  return (
    <section class="secret" aria-labelledby="secret-title" data-testid="secret-once">
      <h3 id="secret-title">Copy the secret of {props.what} now</h3>
      <p class="warning"><strong>This is the only time it is shown.</strong> The gateway stores only its hash; if you lose it, rotate the key.</p>
      <label for="secret-value">Secret</label>
      <div class="row">
        <input id="secret-value" ref={input} readOnly value={props.secret} data-testid="secret-value" spellcheck={false} onFocus={(e) => e.currentTarget.select()} />
        <button type="button" onClick={() => void copy()}>Copy</button>
        <button type="button" class="secondary" onClick={props.onDone}>I have stored it</button>
      </div>
      <span ref={copied} role="status" />
    </section>
  );
}
