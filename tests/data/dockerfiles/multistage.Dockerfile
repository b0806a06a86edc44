ARG GO=1.22
ARG BASE=alpine:3.19
FROM --platform=$BUILDPLATFORM golang:${GO} AS Build
WORKDIR /src
COPY go.* ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/root/.cache/go-build CGO_ENABLED=0 go build -o /out/app ./cmd/app
FROM ${BASE}
COPY --from=build --chown=65532:65532 --chmod=0755 /out/app /app
USER 65532:65532
ENTRYPOINT ["/app"]
