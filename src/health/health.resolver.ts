import { Field, Float, ObjectType, Query, Resolver, Ctx, registerEnumType } from 'type-graphql';
import type { GraphQLContext } from '../graphql/context';
import { healthSnapshot } from './health.service';

export enum DependencyStatus {
  UP = 'UP',
  DOWN = 'DOWN',
  STARTING = 'STARTING',
  NOT_CONFIGURED = 'NOT_CONFIGURED',
}
registerEnumType(DependencyStatus, {
  name: 'DependencyStatus',
  description: 'State of a backing service. NOT_CONFIGURED: the gateway runs without it (embedded defaults).',
});

export enum DatabaseMode {
  POSTGRES = 'POSTGRES',
  EMBEDDED = 'EMBEDDED',
}
registerEnumType(DatabaseMode, { name: 'DatabaseMode' });

@ObjectType({ description: 'Liveness and dependency state of this gateway process' })
export class Health {
  @Field({ description: '"ok" when every dependency is up, "degraded" otherwise' })
  status!: string;

  @Field()
  version!: string;

  @Field(() => Float)
  uptimeSeconds!: number;

  @Field(() => DependencyStatus)
  database!: DependencyStatus;

  @Field(() => DatabaseMode)
  databaseMode!: DatabaseMode;

  @Field(() => DependencyStatus)
  redis!: DependencyStatus;
}

@Resolver()
export class HealthResolver {
  @Query(() => Health, { description: 'Gateway health; needs no API key' })
  health(@Ctx() ctx: GraphQLContext): Health {
    return healthSnapshot(ctx.services);
  }
}
