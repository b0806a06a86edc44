FROM node:20-alpine AS deps
WORKDIR /app
COPY package.json package-lock.json* ./
RUN npm ci --omit=dev && npm cache clean --force

FROM node:20-alpine
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY . .
HEALTHCHECK --interval=10s CMD wget -qO- http://localhost:3000/health || exit 1
USER node
EXPOSE 3000
CMD ["node", "server.js"]
