# Static, CGO-free binaries (modernc SQLite) on a small base image.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/api ./cmd/api && \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/worker ./cmd/worker && \
    mkdir -p /out/data

FROM gcr.io/distroless/static-debian12
COPY --from=build /out/api /out/worker /usr/local/bin/
# The data directory belongs to the user the processes run as (nonroot, 65532); a named volume mounted here
# starts with this ownership, so the nonroot processes can write it.
COPY --from=build --chown=65532:65532 /out/data /data
USER nonroot
ENTRYPOINT ["/usr/local/bin/api"]
