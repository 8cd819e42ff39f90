# Cairn's container image: a static binary on an empty base, run as a
# non-root user, with a read-only root filesystem in mind (data_dir is a
# volume). Build it from the repository root:
#
#   docker build -t cairn:2026.11.3 .
#
# cmd/cairn/deploy_docker_test.go runs the build line below (the one that
# carries CGO_ENABLED=0) and checks that the binary it makes is static.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/cairn ./cmd/cairn
# The data directory, owned by the runtime user, for the volume to mount over.
RUN mkdir -p /out/var/lib/cairn /out/tmp && chown -R 65532:65532 /out/var/lib/cairn && chmod 1777 /out/tmp

FROM scratch
# Providers are reached over TLS: the build stage's CA bundle.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/cairn /usr/local/bin/cairn
COPY --from=build --chown=65532:65532 /out/var/lib/cairn /var/lib/cairn
COPY --from=build /out/tmp /tmp
USER 65532:65532
WORKDIR /var/lib/cairn
VOLUME ["/var/lib/cairn"]
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/cairn"]
CMD ["serve", "--config", "/etc/cairn/cairn.yaml"]
