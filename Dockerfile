# streamgate in a container: Node 20 on Debian, the compiled gateway, the default config.
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json binding.gyp ./
COPY native ./native
# The optional sendfile addon is compiled during npm ci; the compiler leaves in the same layer.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ \
 && npm ci --no-audit --no-fund \
 && apt-get purge -y --auto-remove python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY tsconfig.json ./
COPY src ./src
COPY bin ./bin
COPY config ./config
COPY www ./www
COPY public ./public
RUN npx tsc -p . && npm prune --omit=dev
EXPOSE 1935 8080 8088
# SIGTERM drains live streams and in-flight requests before exit.
STOPSIGNAL SIGTERM
CMD ["node", "dist/src/cli.js", "-c", "config/streamgate.conf"]
