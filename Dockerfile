# The CPU image on Node 24 LTS (Node 20 is end-of-life since 2026-04). The GPU
# image is Dockerfile.cuda. Base images are pinned by digest (tag kept for
# readers); `node scripts/pin-base-images.mjs` (needs registry access) re-pins
# them to the tag's current digest, `--check` fails on one left unpinned
# (README, "Images").
#
# Build stage: installs everything (dev deps for tsc and prisma generate) and compiles.
FROM node:24-bookworm-slim@sha256:6f7b03f7c2c8e2e784dcf9295400527b9b1270fd37b7e9a7285cf83b6951452d AS build
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json .npmrc ./
COPY scripts ./scripts
COPY prisma ./prisma
COPY prisma.config.ts ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build:ts && npm prune --omit=dev

# Runtime stage: compiled code, production deps, migrations and models.
FROM node:24-bookworm-slim@sha256:6f7b03f7c2c8e2e784dcf9295400527b9b1270fd37b7e9a7285cf83b6951452d
WORKDIR /app
ENV NODE_ENV=production PORT=4000 GRPC_PORT=8001 HOST=0.0.0.0
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY prisma ./prisma
COPY models ./models
# Triton's .proto files the gRPC door loads at start.
COPY proto ./proto
# DATA_DIR: the usage spool (records kept while Postgres is down) and, without
# DATABASE_URL, the embedded database. Mount a volume there to keep it across
# container replacement.
RUN mkdir -p /app/.data && chown node:node /app/.data
VOLUME ["/app/.data"]
USER node
EXPOSE 4000 8001
HEALTHCHECK --interval=10s --timeout=3s --retries=5 CMD node -e "fetch('http://127.0.0.1:4000/readyz').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))"
CMD ["node", "dist/main.js"]
