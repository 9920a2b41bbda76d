/** `ApiKey.tenant`: the key's tenant, so a key listing or lookup names it without a second round trip. */
import { Authorized, Ctx, FieldResolver, Resolver, Root } from 'type-graphql';
import type { Tenant } from '../../../db/generated/client';
import type { GraphQLContext } from '../context';
import { NotFoundError } from '../../../errors';
import { ApiKeyType, TenantType } from './keys.types';
import { toTenantType } from './keys.resolver';

// One lookup per tenant and request: a page of 100 keys of one tenant costs one query, not 100.
const perRequest = new WeakMap<GraphQLContext, Map<string, Promise<Tenant | null>>>();

@Resolver(() => ApiKeyType)
export class ApiKeyTenantResolver {
  // Whoever may read a key may read its tenant (the key's own tenant, or an admin), so no check beyond a key.
  @Authorized()
  @FieldResolver(() => TenantType, { description: 'The tenant the key belongs to' })
  async tenant(@Root() key: ApiKeyType, @Ctx() ctx: GraphQLContext): Promise<TenantType> {
    let cache = perRequest.get(ctx);
    if (!cache) perRequest.set(ctx, (cache = new Map()));
    let pending = cache.get(key.tenantId);
    if (!pending) cache.set(key.tenantId, (pending = ctx.services.keys.tenantById(key.tenantId)));
    const tenant = await pending;
    if (!tenant) throw new NotFoundError('Unknown tenant');
    return toTenantType(tenant);
  }
}
