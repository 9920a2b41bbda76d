import type { FastifyInstance } from 'fastify';
import type { Services } from '../server/services';

export function registerOipRoutes(_app: FastifyInstance, _services: Services): void {}
