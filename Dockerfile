# One image with the three binaries: dht-relay (all in one), edge and
# dhtworker. Static, no shell, runs as an unprivileged user.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags=-s -o /out/ ./cmd/dht-relay ./cmd/edge ./cmd/dhtworker

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
USER nonroot:nonroot
# Clients (WebSocket), gossip between edges and workers, metrics.
EXPOSE 49443/tcp 7946/tcp 7946/udp 9090/tcp
ENTRYPOINT ["/usr/local/bin/dht-relay"]
