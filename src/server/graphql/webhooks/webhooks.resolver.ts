/** The webhooks API. Resolvers parse and shape; access rules live in WebhookService. */
import { Arg, Args, ArgsType, Authorized, Ctx, Field, ID, Int, Mutation, Query, Resolver } from 'type-graphql';
import type { WebhookEndpoint } from '../../../db/generated/client';
import { callerOf, type GraphQLContext } from '../context';
import type { ConnectionShape } from '../keys/keys.types';
import type { DeliveryRow, WebhookInput, WebhookService } from '../../../webhooks/webhook.service';
import {
  CreatedWebhookType,
  CreateWebhookInput,
  UpdateWebhookInput,
  WebhookDeliveryConnection,
  WebhookDeliveryStatusValue,
  WebhookDeliveryType,
  WebhookType,
} from './webhooks.types';

@ArgsType()
class WebhookDeliveriesArgs {
  @Field(() => Int, { nullable: true, description: 'Page size, 1-100 (default 20)' }) first?: number | null;
  @Field(() => String, { nullable: true, description: 'endCursor of the previous page' }) after?: string | null;
  @Field(() => String, { nullable: true, description: "Tenant id or name; default: the caller's (admins: every tenant)" }) tenant?: string | null;
  @Field(() => ID, { nullable: true, description: 'Only this webhook' }) webhookId?: string | null;
  @Field(() => ID, { nullable: true, description: 'Only this event' }) eventId?: string | null;
  @Field(() => WebhookDeliveryStatusValue, { nullable: true, description: 'Only deliveries in this state' }) status?: WebhookDeliveryStatusValue | null;
}


function service(ctx: GraphQLContext): WebhookService {
  return ctx.services.webhooks;
}

export function toWebhookType(e: WebhookEndpoint): WebhookType {
  return { id: e.id, tenantId: e.tenantId, url: e.url, events: e.events, thresholds: e.thresholds, enabled: e.enabled, secretPrefix: e.secretPrefix, createdAt: e.createdAt, updatedAt: e.updatedAt };
}

export function toDeliveryType(d: DeliveryRow): WebhookDeliveryType {
  return {
    id: d.id,
    eventId: d.eventId,
    eventType: d.event.type,
    webhookId: d.endpointId,
    url: d.endpoint.url,
    tenantId: d.tenantId,
    status: d.status as WebhookDeliveryStatusValue,
    attempts: d.attempts,
    nextAttemptAt: d.nextAttemptAt,
    lastAttemptAt: d.lastAttemptAt,
    lastStatusCode: d.lastStatusCode,
    lastError: d.lastError,
    deliveredAt: d.deliveredAt,
    createdAt: d.createdAt,
  };
}

/** GraphQL's null means "not given" for these optional inputs. */
function inputOf(i: UpdateWebhookInput | CreateWebhookInput): WebhookInput {
  const out: WebhookInput = {};
  if (i.url !== undefined && i.url !== null) out.url = i.url;
  if (i.events !== undefined && i.events !== null) out.events = i.events;
  if (i.thresholds !== undefined && i.thresholds !== null) out.thresholds = i.thresholds;
  if (i.enabled !== undefined && i.enabled !== null) out.enabled = i.enabled;
  return out;
}

@Resolver()
export class WebhooksResolver {
  @Authorized('keys:manage')
  @Mutation(() => CreatedWebhookType, { description: 'Adds a webhook; the answer carries its signing secret, shown only this once. Scope: keys:manage (own tenant) or admin.' })
  async createWebhook(@Arg('input', () => CreateWebhookInput, { description: 'URL, events and thresholds of the new webhook' }) input: CreateWebhookInput, @Ctx() ctx: GraphQLContext): Promise<CreatedWebhookType> {
    const caller = callerOf(ctx);
    const { endpoint, secret } = await service(ctx).create(caller, input.tenant ?? ctx.principal?.tenantId ?? '', inputOf(input));
    return { webhook: toWebhookType(endpoint), secret };
  }

  @Authorized('keys:manage')
  @Mutation(() => WebhookType, { description: 'Changes a webhook (URL, events, thresholds, enabled). Scope: keys:manage (own tenant) or admin.' })
  async updateWebhook(@Arg('id', () => ID, { description: 'Webhook id' }) id: string, @Arg('input', () => UpdateWebhookInput, { description: 'What to change; absent fields stay as they are' }) input: UpdateWebhookInput, @Ctx() ctx: GraphQLContext): Promise<WebhookType> {
    return toWebhookType(await service(ctx).update(callerOf(ctx), id, inputOf(input)));
  }

  @Authorized('keys:manage')
  @Mutation(() => Boolean, { description: 'Deletes a webhook and its delivery log. Scope: keys:manage (own tenant) or admin.' })
  async deleteWebhook(@Arg('id', () => ID, { description: 'Webhook id' }) id: string, @Ctx() ctx: GraphQLContext): Promise<boolean> {
    return service(ctx).delete(callerOf(ctx), id);
  }

  @Authorized('keys:manage')
  @Mutation(() => CreatedWebhookType, { description: 'Replaces the signing secret at once; the new one is shown only this once. Scope: keys:manage (own tenant) or admin.' })
  async rotateWebhookSecret(@Arg('id', () => ID, { description: 'Webhook id' }) id: string, @Ctx() ctx: GraphQLContext): Promise<CreatedWebhookType> {
    const { endpoint, secret } = await service(ctx).rotateSecret(callerOf(ctx), id);
    return { webhook: toWebhookType(endpoint), secret };
  }

  @Authorized('keys:manage')
  @Mutation(() => WebhookDeliveryType, { description: 'Sends a delivery again now (same event id), e.g. after it FAILED. Scope: keys:manage (own tenant) or admin.' })
  async redeliverWebhookEvent(@Arg('deliveryId', () => ID, { description: 'Delivery id from webhookDeliveries' }) deliveryId: string, @Ctx() ctx: GraphQLContext): Promise<WebhookDeliveryType> {
    return toDeliveryType(await service(ctx).redeliver(callerOf(ctx), deliveryId));
  }

  @Authorized('keys:manage')
  @Query(() => [WebhookType], { description: "A tenant's webhooks, newest first. Scope: keys:manage (own tenant) or admin (any; every tenant when none is named)." })
  async webhooks(@Ctx() ctx: GraphQLContext, @Arg('tenant', () => String, { nullable: true, description: 'Tenant id or name' }) tenant?: string | null): Promise<WebhookType[]> {
    return (await service(ctx).list(callerOf(ctx), tenant)).map(toWebhookType);
  }

  @Authorized('keys:manage')
  @Query(() => WebhookDeliveryConnection, { description: 'The delivery log, newest first: status, attempts, last status code or error per event and webhook. Scope: keys:manage (own tenant) or admin.' })
  async webhookDeliveries(@Args(() => WebhookDeliveriesArgs) args: WebhookDeliveriesArgs, @Ctx() ctx: GraphQLContext): Promise<ConnectionShape<WebhookDeliveryType>> {
    const page = await service(ctx).deliveries(callerOf(ctx), { tenant: args.tenant, endpointId: args.webhookId, eventId: args.eventId, status: args.status ?? null }, args);
    const edges = page.edges.map((e) => ({ cursor: e.cursor, node: toDeliveryType(e.node) }));
    return {
      edges,
      pageInfo: { hasNextPage: page.hasNextPage, hasPreviousPage: page.hasPreviousPage, startCursor: edges[0]?.cursor ?? null, endCursor: edges[edges.length - 1]?.cursor ?? null },
    };
  }
}
