# Cost Guard worker + API image (docker-compose.yml runs it). Multi-stage: build with dev
# dependencies, run with production ones only.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY workflows ./workflows
COPY activities ./activities
RUN npm run build

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY --from=build /app/dist ./dist
COPY migrations ./migrations
COPY config ./config
USER node
# 8080: the API (start); 9464: the worker's Prometheus listener (start --no-api).
EXPOSE 8080 9464
ENTRYPOINT ["node", "dist/src/cli/main.js"]
CMD ["start"]
