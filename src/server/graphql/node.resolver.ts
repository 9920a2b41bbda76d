/**
 * node(id) and nodes(ids): refetch any object with a stable id. Each domain
 * looks its ids up with the same access rules as its direct queries; an
 * object the caller may not read answers null, exactly like an unknown id.
 */
import { Arg, Authorized, Ctx, ID, Query, Resolver } from 'type-graphql';
import { callerOf, type GraphQLContext } from './context';
import { Node } from './node';
import { BadInputError, UnauthenticatedError } from '../../errors';
import { ApiKeyType, AuditEventType, TenantType } from './keys/keys.types';
import { toApiKeyType, toAuditEventType, toTenantType } from './keys/keys.resolver';
import { PriceType } from './billing/billing.types';
import { toPriceType } from './billing/billing.resolver';
import { UsageRecordType } from './usage/usage.types';
import { hasScope, isAdminKey } from '../../auth/scopes';
import { WebhookDeliveryType, WebhookType } from './webhooks/webhooks.types';
import { toDeliveryType, toWebhookType } from './webhooks/webhooks.resolver';

/** Most ids one nodes() call takes (each is up to eight primary-key lookups). */
export const MAX_NODE_IDS = 100;

async function resolveNode(ctx: GraphQLContext, id: string): Promise<Node | null> {
  const principal = ctx.principal;
  if (!principal) throw new UnauthenticatedError();
  const caller = callerOf(ctx, principal);
  const found = await ctx.services.keys.nodeById(caller, id);
  // Instances, so the Node interface resolves each value to its object type.
  if (found?.kind === 'Tenant') return Object.assign(new TenantType(), toTenantType(found.row));
  if (found?.kind === 'ApiKey') return Object.assign(new ApiKeyType(), toApiKeyType(found.row));
  if (found?.kind === 'AuditEvent') return Object.assign(new AuditEventType(), toAuditEventType(found.row));
  const hook = await ctx.services.webhooks.nodeById(caller, id);
  if (hook?.kind === 'Webhook') return Object.assign(new WebhookType(), toWebhookType(hook.row));
  if (hook?.kind === 'WebhookDelivery') return Object.assign(new WebhookDeliveryType(), toDeliveryType(hook.row));
  const price = await ctx.services.billing.priceById(principal, id);
  if (price) return Object.assign(new PriceType(), toPriceType(price));
  if (!hasScope(principal, 'usage:read')) return null;
  const record = await ctx.services.usage.queries.recordById(isAdminKey(principal) ? null : principal.tenantId, id);
  return record ? Object.assign(new UsageRecordType(), record) : null;
}

@Resolver()
export class NodeResolver {
  @Authorized()
  @Query(() => Node, { nullable: true, description: 'The object with this id, or null when there is none or the calling key may not read it (the same rules as the direct queries). Needs any valid key.' })
  node(@Ctx() ctx: GraphQLContext, @Arg('id', () => ID, { description: 'An id returned by this API' }) id: string): Promise<Node | null> {
    return resolveNode(ctx, id);
  }

  @Authorized()
  @Query(() => [Node], { nullable: 'items', description: `The objects with these ids, in order; null in place of each that node(id) would answer null for. At most ${MAX_NODE_IDS} ids.` })
  async nodes(@Ctx() ctx: GraphQLContext, @Arg('ids', () => [ID], { description: `Ids returned by this API, at most ${MAX_NODE_IDS}` }) ids: string[]): Promise<(Node | null)[]> {
    if (ids.length > MAX_NODE_IDS) throw new BadInputError(`nodes takes at most ${MAX_NODE_IDS} ids`, 'ids');
    return Promise.all(ids.map((id) => resolveNode(ctx, id)));
  }
}
