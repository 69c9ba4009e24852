# syntax=docker/dockerfile:1
# nightwatch's image: the worker (default command) and the API (`src/api/server.ts`) from one image.
#   docker build -t registry.example.com/platform/nightwatch:0.1.0 .
# Three stages: `build` installs everything, generates the Prisma client and prebuilds the workflow
# bundle; `runtime-deps` installs the production dependencies, and tsx apart; the final stage holds only
# those, the sources the processes load, the bundle and the migrations, owned by root and run as
# uid 1000. Pin NODE_IMAGE to a digest in your registry for reproducible builds.
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
# Prisma's CLI fetches its schema engine at start-up; `prisma generate` does not need it and
# migrations are applied by src/db/migrate.ts, so point it at a stub (as scripts/ensure-deps.sh does).
RUN printf '#!/bin/sh\necho "the Prisma schema engine is not in this image; migrations run with src/db/migrate-cli.ts" >&2\nexit 1\n' \
      > /usr/local/bin/prisma-schema-engine-stub \
 && chmod +x /usr/local/bin/prisma-schema-engine-stub
ENV PRISMA_SCHEMA_ENGINE_BINARY=/usr/local/bin/prisma-schema-engine-stub CHECKPOINT_DISABLE=1
COPY package.json package-lock.json prisma.config.ts ./
COPY prisma ./prisma
# postinstall runs `prisma generate` too; it is run again below once the sources are in place.
RUN npm ci --no-audit --no-fund --loglevel=error
COPY tsconfig.json ./
COPY src ./src
COPY activities ./activities
COPY workflows ./workflows
COPY scripts/build-workflows.ts ./scripts/build-workflows.ts
RUN npx prisma generate \
 && npm run build:workflows -- lib/workflow-bundle.js

FROM ${NODE_IMAGE} AS runtime-deps
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only. No install scripts are needed: the native parts (Temporal's core
# bridge, SWC, esbuild) come as prebuilt per-platform packages.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error
# The processes run their TypeScript through tsx, as `npm run worker` does. It is a dev dependency
# (so --omit=dev leaves it out): install the lock's version in a tree of its own.
RUN npm install --prefix /opt/tsx --ignore-scripts --no-audit --no-fund --loglevel=error \
      "tsx@$(node -p 'require("./package-lock.json").packages["node_modules/tsx"].version')" \
 && npm cache clean --force

FROM ${NODE_IMAGE}
WORKDIR /app
ENV NODE_ENV=production \
    WORKFLOW_BUNDLE_PATH=/app/lib/workflow-bundle.js
COPY --from=runtime-deps /app/node_modules ./node_modules
COPY --from=runtime-deps /opt/tsx /opt/tsx
COPY package.json tsconfig.json ./
COPY --from=build /app/src ./src
COPY --from=build /app/activities ./activities
COPY --from=build /app/workflows ./workflows
COPY --from=build /app/prisma/migrations ./prisma/migrations
COPY --from=build /app/lib/workflow-bundle.js ./lib/workflow-bundle.js
# The image's `node` user, by number so that runAsNonRoot can check it. Everything above stays
# root-owned and read-only to it; the only writable path it needs is /tmp (tsx's cache), an
# emptyDir in deploy/ where the root filesystem is read-only.
USER 1000:1000
# node itself is PID 1 and gets SIGTERM: the worker and the API both handle it (graceful shutdown).
ENTRYPOINT ["node", "--import", "/opt/tsx/node_modules/tsx/dist/loader.mjs"]
CMD ["src/worker.ts"]
