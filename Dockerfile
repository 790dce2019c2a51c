# The vmhub worker and SDDC agent image, for operators with Docker (see docker-compose.yml).
# `docker run vmhub control` runs the control worker; `docker run vmhub agent <sddc>` one SDDC's agent.
ARG NODE_IMAGE=node:22.22.0-bookworm-slim

# Compiles the sources and bundles the workflow code with the dev dependencies, which stay here.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY scripts/build-bundle.ts ./scripts/
RUN npm run build && npm run build:bundle

FROM ${NODE_IMAGE}
# tini as PID 1 forwards SIGTERM to the worker (so it drains its activities) and reaps zombies.
RUN apt-get update \
  && apt-get install -y --no-install-recommends tini \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
# --ignore-scripts: prepare would build, but the compiled code comes from the build stage.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY config ./config
# Compiled code lives in dist/, so paths that would resolve against the checkout are given in full.
ENV VMHUB_WORKFLOW_BUNDLE=/app/dist/workflow-bundle.js \
    VMHUB_TOPOLOGY=/app/config/topology.json \
    VMHUB_DATA_DIR=/app/.data
# Owned by the runtime user, so a volume mounted at .data/sddc starts out writable for it.
RUN mkdir -p /app/.data/sddc && chown -R node:node /app/.data
USER node
# The V8 flags of src/dev-services/worker-process.ts (WORKER_NODE_FLAGS): a smaller young generation.
ENTRYPOINT ["/usr/bin/tini", "--", "node", "--max-semi-space-size=4", "dist/temporal/worker.js"]
CMD ["control"]
