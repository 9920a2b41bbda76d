/** The GraphQL shape of the health snapshot (src/health/health.service.ts). */
import { Field, Float, ObjectType, registerEnumType } from 'type-graphql';
import { DatabaseMode, DependencyStatus, type HealthSnapshot } from '../../../health/health.service';

registerEnumType(DependencyStatus, {
  name: 'DependencyStatus',
  description: 'State of a backing service',
  valuesConfig: {
    UP: { description: 'Reachable and answering' },
    DOWN: { description: 'Configured but not reachable now' },
    STARTING: { description: 'Connecting (at start, or reconnecting)' },
    NOT_CONFIGURED: { description: 'The gateway runs without it (embedded defaults)' },
  },
});
registerEnumType(DatabaseMode, {
  name: 'DatabaseMode',
  description: 'Which database the gateway uses',
  valuesConfig: {
    POSTGRES: { description: 'An external PostgreSQL (DATABASE_URL)' },
    EMBEDDED: { description: 'Embedded PGlite in DATA_DIR (no DATABASE_URL): one process only' },
  },
});

@ObjectType({ description: 'Liveness and dependency state of this gateway process' })
export class Health implements HealthSnapshot {
  @Field({ description: '"ok" when every dependency is up, "degraded" otherwise' })
  status!: string;

  @Field({ description: 'Gateway version (package.json)' })
  version!: string;

  @Field(() => Float, { description: 'Seconds since this process started' })
  uptimeSeconds!: number;

  @Field(() => DependencyStatus, { description: 'The database' })
  database!: DependencyStatus;

  @Field(() => DatabaseMode, { description: 'External Postgres or embedded PGlite' })
  databaseMode!: DatabaseMode;

  @Field(() => DependencyStatus, { description: 'Redis (limits, key cache invalidation); NOT_CONFIGURED without REDIS_URL' })
  redis!: DependencyStatus;
}
