/** Everything a production-truth test needs: the built gateway as a child process, and private services to fault. */
export { ProductionGateway, productionEnv, runCli, sleep, MAIN_JS, CLI_JS, REPO_ROOT } from './production-gateway';
export type { Exit, GraphQLBody, HttpResult, StartOptions } from './production-gateway';
export { PrivatePostgres } from '../usage/private-postgres';
export { TestRedisServer } from '../ratelimit/redis-server';
export { NginxBalancer } from './nginx';
export { beforeExpiry, until, READY_TIMEOUT_MS, STARTUP_TEST_TIMEOUT_MS, WAIT_TIMEOUT_MS } from './until';
export type { UntilOptions } from './until';
export type { SiteConfig } from './nginx';
