# streamgate in a container: Node 20 on Debian, the compiled gateway, the default config.
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
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
