import { Ctx, Query, Resolver } from 'type-graphql';
import type { GraphQLContext } from '../context';
import { healthSnapshot } from '../../../health/health.service';
import { Health } from './health.types';

@Resolver()
export class HealthResolver {
  @Query(() => Health, { description: 'Gateway health; needs no API key' })
  health(@Ctx() ctx: GraphQLContext): Health {
    return healthSnapshot(ctx.services);
  }
}
