# syntax=docker/dockerfile:1
# Gatehouse: an OpenID Connect API gateway.
# The install and build steps are the ones CI runs (.ci/run → npm ci, npm test → npm run build),
# so a green CI keeps this file's steps working even though no Docker engine runs there.

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json nest-cli.json ./
COPY src ./src
COPY test ./test
COPY bench ./bench
RUN npm run build

FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production \
    GATEHOUSE_DECLARATIVE_CONFIG=/etc/gatehouse/kong.yaml \
    GATEHOUSE_PROXY_LISTEN=0.0.0.0:8000 \
    GATEHOUSE_STATUS_LISTEN=0.0.0.0:8100
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist/src ./dist/src
COPY config ./config
# Mount your declarative config here (a ConfigMap in Kubernetes); secrets come from the environment
# through {vault://env/NAME} references.
VOLUME ["/etc/gatehouse"]
USER node
EXPOSE 8000 8100
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8100/health/live').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
STOPSIGNAL SIGTERM
# glibc's malloc trim threshold (MALLOC_TUNABLES in src/runtime/node-flags.ts): overridable with -e GLIBC_TUNABLES=...
ENV GLIBC_TUNABLES=glibc.malloc.trim_threshold=67108864
# --no-memory-reducer, --initial-old-space-size: see src/runtime/node-flags.ts (V8 flags node accepts only on its command line).
CMD ["node", "--no-memory-reducer", "--initial-old-space-size=128", "dist/src/main.js"]
