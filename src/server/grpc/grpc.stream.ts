/**
 * One ModelStreamInfer stream (Triton's bidirectional inference stream):
 * each request is authenticated, admitted, metered and answered on its own
 * (in completion order; clients match answers by `id`). A refused request
 * answers `error_message` and the stream goes on, except when the key itself
 * is refused (revoked, expired): the requests already admitted are answered,
 * later ones are not read, and the stream ends with that status, so a stream
 * outlives no revocation. On drain (SIGTERM) an open stream is served
 * until its client half-closes it, as gRPC's graceful stop does; the drain
 * timeout cuts what is still open then.
 */
import { status, type Metadata, type ServerDuplexStream, type StatusObject } from '@grpc/grpc-js';
import type { CallContext, PipelineOutcome } from '../../inference/pipeline';
import type { RequestTrace } from '../../tracing/types';
import type { ModelInferRequestMessage, ModelInferResponseMessage } from './grpc.codec';
import { UnreadableMessage } from './grpc.bounds';
import { grpcCode, grpcStatus } from './grpc.errors';

/** A stream request as it arrives: decoded, or refused unread by the guard (answered BAD_INPUT in the stream). */
type StreamRequest = ModelInferRequestMessage | UnreadableMessage;

/** The fields an answer echoes (none of an unread message). */
function echo(message: StreamRequest): { id: string; model_name: string; model_version: string } {
  return message instanceof UnreadableMessage ? { id: '', model_name: '', model_version: '' } : { id: message.id, model_name: message.model_name, model_version: message.model_version };
}

/** What a stream needs of its door. */
export interface StreamHost {
  callContext(metadata: Metadata, sequence?: number): CallContext;
  /** A request's server span under the stream's trace context, and the context carrying it. */
  traced(context: CallContext, metadata: Metadata, method: string): { context: CallContext; trace: RequestTrace };
  infer(call: CallContext, message: StreamRequest, deadline: Date | number): Promise<PipelineOutcome<ModelInferResponseMessage>>;
}

/** Codes that refuse the key rather than one request (revoked, expired, unknown): the stream ends on them. */
const KEY_REFUSALS = new Set(['UNAUTHENTICATED']);

export class StreamInfer {
  private readonly base: CallContext;
  private pending = 0;
  private sequence = 0;
  private closing = false;
  private done = false;
  /** The status the stream ends with once its pending requests are answered (a refused key); null: OK. */
  private failure: StatusObject | null = null;

  constructor(
    private readonly call: ServerDuplexStream<StreamRequest, unknown>,
    private readonly host: StreamHost,
    private readonly onClosed: () => void,
  ) {
    this.base = host.callContext(call.metadata);
    call.on('data', (message: StreamRequest) => this.onRequest(message));
    call.on('end', () => this.clientDone());
    call.on('cancelled', () => this.finish());
    call.on('error', () => this.finish());
  }

  /** The client sent its last request: the stream ends OK once the pending ones are answered. */
  private clientDone(): void {
    this.closing = true;
    this.endIfIdle();
  }

  private onRequest(message: StreamRequest): void {
    if (this.done) return;
    // After a refused key nothing more is read.
    if (this.failure) return;
    this.pending += 1;
    this.sequence += 1;
    // Each request is its own server span (the stream's metadata names the caller's trace).
    const { context, trace } = this.host.traced({ ...this.base, sequence: this.sequence }, this.call.metadata, 'ModelStreamInfer');
    this.host
      .infer(context, message, this.call.getDeadline())
      .then(
        (outcome) => {
          trace.end(outcome.ok ? status.OK : grpcCode(outcome.error.code));
          this.answer(message, outcome, context.requestId);
        },
        (error: unknown) => {
          trace.end(status.INTERNAL);
          context.log.error({ err: error }, 'unexpected error in a gRPC stream request');
          if (!this.done) this.call.write({ error_message: 'Internal server error', infer_response: echo(message) });
        },
      )
      .finally(() => {
        this.pending -= 1;
        this.endIfIdle();
      });
  }

  private answer(message: StreamRequest, outcome: PipelineOutcome<ModelInferResponseMessage>, requestId: string): void {
    if (this.done) return;
    if (outcome.ok) {
      this.call.write({ error_message: '', infer_response: outcome.result });
    } else if (KEY_REFUSALS.has(outcome.error.code)) {
      // Requests admitted before the refusal were metered: they are answered, then the stream ends with the refusal.
      this.failure ??= grpcStatus(outcome.error, outcome.limits, requestId);
      this.closing = true;
    } else {
      this.call.write({ error_message: `${outcome.error.code}: ${outcome.error.message}`, infer_response: echo(message) });
    }
  }

  private endIfIdle(): void {
    if (this.done || !this.closing || this.pending > 0) return;
    this.done = true;
    if (this.failure) this.call.emit('error', this.failure);
    else this.call.end();
    this.onClosed();
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.onClosed();
  }
}
