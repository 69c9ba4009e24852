# syntax=docker/dockerfile:1
# nightwatch's image: the worker (default command) and the API (`src/api/server.ts`) from one image.
#   docker build -t registry.example.com/platform/nightwatch:0.1.0 .
# Three stages: `build` installs everything, generates the Prisma client and prebuilds the workflow
# bundle; `runtime-deps` installs the production dependencies; the final stage holds only
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
COPY patches ./patches
# postinstall applies patches/ (patch-package) and runs `prisma generate`; generate is run again
# below once the sources are in place.
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
COPY patches ./patches
# Production dependencies only. No install scripts are needed: the native parts (Temporal's core
# bridge, SWC, esbuild) come as prebuilt per-platform packages. patches/ is applied on its own
# (the Temporal worker's patch: README, "Scale"); patch-package fails the build if it does not apply.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error \
 && npx --no-install patch-package --error-on-fail \
 && npm cache clean --force

FROM ${NODE_IMAGE}
WORKDIR /app
# mimalloc for both processes' native side, preloaded as scripts/worker.sh does for `npm run worker`
# (ENTRYPOINT is node itself): glibc's per-thread arenas hold on to what the Temporal core's threads
# free, about a third more memory outside the heaps with many tasks in flight (README, "Memory").
# Linked under one name whatever the architecture; unset LD_PRELOAD to run on glibc's malloc.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libmimalloc2.0 \
 && rm -rf /var/lib/apt/lists/* \
 && ln -s "$(find /usr/lib -name libmimalloc.so.2 | head -n 1)" /usr/local/lib/libmimalloc.so.2 \
 && test -f /usr/local/lib/libmimalloc.so.2
ENV NODE_ENV=production \
    WORKFLOW_BUNDLE_PATH=/app/lib/workflow-bundle.js \
    LD_PRELOAD=/usr/local/lib/libmimalloc.so.2
COPY --from=runtime-deps /app/node_modules ./node_modules
COPY package.json tsconfig.json ./
COPY --from=build /app/src ./src
COPY --from=build /app/activities ./activities
COPY --from=build /app/workflows ./workflows
COPY --from=build /app/prisma/migrations ./prisma/migrations
COPY --from=build /app/lib/workflow-bundle.js ./lib/workflow-bundle.js
# The image's `node` user, by number so that runAsNonRoot can check it. Everything above stays
# root-owned and read-only to it. It writes nothing; deploy/ still mounts an emptyDir on /tmp
# (the root filesystem is read-only there) for libraries that expect one.
USER 1000:1000
# node itself is PID 1 and gets SIGTERM: the worker and the API both handle it (graceful shutdown).
# Node 24 runs the TypeScript itself (type stripping; tsconfig's erasableSyntaxOnly keeps the sources
# within what it can strip), as `npm run worker` does: no loader, no transform cache.
# --max-semi-space-size=8 caps V8's young generation in every heap of the worker, as scripts/worker.sh
# does from WORKER_SEMI_SPACE_MB (README, "Memory"); a Deployment's args replace it together with
# the script's name (deploy/base/worker.yaml).
ENTRYPOINT ["node"]
CMD ["--max-semi-space-size=8", "src/worker.ts"]
