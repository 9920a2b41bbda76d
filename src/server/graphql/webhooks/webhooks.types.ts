/** GraphQL types of the webhooks API. */
import { Field, ID, InputType, Int, ObjectType, registerEnumType } from 'type-graphql';
import { Node } from '../node';
import { connection } from '../keys/keys.types';

export enum WebhookDeliveryStatusValue {
  PENDING = 'PENDING',
  DELIVERED = 'DELIVERED',
  FAILED = 'FAILED',
}
registerEnumType(WebhookDeliveryStatusValue, {
  name: 'WebhookDeliveryStatus',
  description: 'Where a delivery stands',
  valuesConfig: {
    PENDING: { description: 'Waiting for its first or next attempt (see nextAttemptAt)' },
    DELIVERED: { description: 'The receiver answered 2xx' },
    FAILED: { description: 'Gave up after WEBHOOK_MAX_ATTEMPTS; redeliverWebhookEvent starts it again' },
  },
});

@ObjectType('Webhook', { implements: Node, description: "An endpoint that receives a tenant's alert events, signed with its secret" })
export class WebhookType implements Node {
  @Field(() => ID, { description: 'Webhook id' }) id!: string;
  @Field(() => ID, { description: 'The tenant whose events it receives' }) tenantId!: string;
  @Field({ description: 'Where events are POSTed' }) url!: string;
  @Field(() => [String], { description: 'Event types delivered (quota.threshold, budget.threshold, credits.exhausted, key.expiring, key.revoked, ratelimit.breached); empty: all' }) events!: string[];
  @Field(() => [Int], { description: 'Percentages of a quota or budget that fire a threshold event, once each per period' }) thresholds!: number[];
  @Field({ description: 'false: no new events are queued for it and pending deliveries wait' }) enabled!: boolean;
  @Field({ description: 'First characters of the signing secret, to tell secrets apart (the secret itself is shown only once)' }) secretPrefix!: string;
  @Field({ description: 'When it was created' }) createdAt!: Date;
  @Field({ description: 'When it was last changed' }) updatedAt!: Date;
}

@ObjectType('CreatedWebhook', { description: 'A webhook with its signing secret, shown this once' })
export class CreatedWebhookType {
  @Field(() => WebhookType, { description: 'The webhook' }) webhook!: WebhookType;
  @Field({ description: 'The signing secret (whsec_…): verify Modelgate-Signature with it. Never shown again; rotateWebhookSecret makes a new one' }) secret!: string;
}

@ObjectType('WebhookDelivery', { implements: Node, description: 'One event sent to one webhook: the delivery log' })
export class WebhookDeliveryType implements Node {
  @Field(() => ID, { description: 'Delivery id (redeliverWebhookEvent takes it)' }) id!: string;
  @Field(() => ID, { description: 'The event id, as sent in Modelgate-Event-Id and the body: the same on every attempt' }) eventId!: string;
  @Field({ description: 'The event type' }) eventType!: string;
  @Field(() => ID, { description: 'The webhook' }) webhookId!: string;
  @Field({ description: "The webhook's URL" }) url!: string;
  @Field(() => ID, { description: 'The tenant' }) tenantId!: string;
  @Field(() => WebhookDeliveryStatusValue, { description: 'Where it stands' }) status!: WebhookDeliveryStatusValue;
  @Field(() => Int, { description: 'Attempts started so far (one cut short by a crash counts)' }) attempts!: number;
  @Field({ description: 'When the next attempt is due (PENDING)' }) nextAttemptAt!: Date;
  @Field(() => Date, { nullable: true, description: 'When the last attempt started' }) lastAttemptAt!: Date | null;
  @Field(() => Int, { nullable: true, description: "The receiver's HTTP status on the last attempt; null when none came back" }) lastStatusCode!: number | null;
  @Field(() => String, { nullable: true, description: 'Why the last attempt failed (HTTP status, timed out, connection refused)' }) lastError!: string | null;
  @Field(() => Date, { nullable: true, description: 'When the receiver acknowledged it' }) deliveredAt!: Date | null;
  @Field({ description: 'When the event was queued' }) createdAt!: Date;
}

export const WebhookDeliveryConnection = connection(WebhookDeliveryType, 'WebhookDelivery');

@InputType({ description: 'A new webhook' })
export class CreateWebhookInput {
  @Field(() => String, { nullable: true, description: "Tenant id or name; default: the caller's own" }) tenant?: string | null;
  @Field({ description: 'http:// or https:// URL to POST events to' }) url!: string;
  @Field(() => [String], { nullable: true, description: 'Event types to deliver; absent or empty: all' }) events?: string[] | null;
  @Field(() => [Int], { nullable: true, description: 'Threshold percentages (1-100); default [80, 90, 100]' }) thresholds?: number[] | null;
  @Field(() => Boolean, { nullable: true, description: 'Default true' }) enabled?: boolean | null;
}

@InputType({ description: 'Changes to a webhook; absent fields stay as they are' })
export class UpdateWebhookInput {
  @Field(() => String, { nullable: true, description: 'New URL' }) url?: string | null;
  @Field(() => [String], { nullable: true, description: 'Event types to deliver; empty: all' }) events?: string[] | null;
  @Field(() => [Int], { nullable: true, description: 'Threshold percentages (1-100)' }) thresholds?: number[] | null;
  @Field(() => Boolean, { nullable: true, description: 'false pauses it' }) enabled?: boolean | null;
}
