# syntax=docker/dockerfile:1
# The mongo-operator image: one statically linked binary on distroless, running as non-root.
# The same image runs the operator (`run`, the default) and, through the init container that
# copies the binary out of it, the probes and the backup and restore movers of MongoDB Pods.
#
#   docker build -t ghcr.io/mongo-operator/mongo-operator:0.1.0 \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" .
#
# The binary is built by e2e/static-build.sh, the script the tests run too (tests/static_build.rs
# checks that what it builds is static and runs), so the image and the tests build it the same way.

ARG RUST_IMAGE=rust:1.95-bookworm
ARG BASE_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# Only what the build reads (the workspace: the operator and the simulator crate, whose
# manifests cargo loads; the bench target the manifest declares), so edits elsewhere do not
# invalidate this layer.
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY sim sim
COPY benches benches
COPY e2e/static-build.sh e2e/static-build.sh
# The caches make rebuilds incremental; the binary is copied out of the cached target
# directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    bin="$(e2e/static-build.sh)" \
    && cp "$bin" /mongo-operator \
    && /mongo-operator --version

FROM ${BASE_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="mongo-operator" \
      org.opencontainers.image.description="A Kubernetes operator that runs MongoDB replica sets: HA by default, declarative scaling and upgrades, backups to object storage, private-network isolation." \
      org.opencontainers.image.source="https://github.com/mongo-operator/mongo-operator" \
      org.opencontainers.image.url="https://github.com/mongo-operator/mongo-operator" \
      org.opencontainers.image.documentation="https://github.com/mongo-operator/mongo-operator#readme" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"
COPY --from=build --chmod=0755 /mongo-operator /mongo-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/mongo-operator"]
CMD ["run"]
