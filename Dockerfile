# streamgate in a container: Node 24 (the current LTS) on Debian, the compiled gateway, the default
# config, run as the image's unprivileged `node` user (the default ports are all above 1024).
FROM node:24-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json binding.gyp ./
COPY native ./native
# The optional sendfile addon is compiled during npm ci; the compiler leaves in the same layer.
# --ignore-scripts would skip it, so `prepare` (tsc of src/) is run below, once the sources are in.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ \
 && npm ci --no-audit --no-fund --ignore-scripts && npm run install \
 && apt-get purge -y --auto-remove python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY bin ./bin
COPY config ./config
COPY www ./www
COPY public ./public
RUN npm run prepare && npm prune --omit=dev && rm -rf src \
 && mkdir -p conf && chown node:node conf
# The self-signed certificate for HTTPS is written to ./conf on first start: the one place the
# gateway writes, owned by the user it runs as.
USER node
EXPOSE 1935 8080 8088
# Any HTTP answer from the plain port means the event loop is serving; 5xx or no answer is unhealthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/').then((r) => process.exit(r.status < 500 ? 0 : 1), () => process.exit(1))"]
# SIGTERM drains live streams and in-flight requests, for at most limits.shutdown_timeout (10 s in
# config/streamgate.conf), then exits; docker compose's stop_grace_period is set above that.
STOPSIGNAL SIGTERM
CMD ["node", "dist/src/cli.js", "-c", "config/streamgate.conf"]
