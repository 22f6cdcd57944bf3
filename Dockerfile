# syntax=docker/dockerfile:1.7
# elasticache-export-operator: a small, non-root image.
#   docker build -t elasticache-export-operator:0.1.0 .
# The build needs network access only to the crate registry (crates.io, through `cargo fetch`);
# everything after the fetch runs --offline.

ARG RUST_VERSION=1.95
FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# Size over build time: the shipped binary is stripped, with thin LTO.
ENV CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_PROFILE_RELEASE_LTO=thin \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=4 \
    CARGO_TERM_COLOR=never
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo fetch --locked
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --offline --bin elasticache-export-operator \
 && install -D -m 0755 target/release/elasticache-export-operator /out/elasticache-export-operator \
 && /out/elasticache-export-operator --version

# glibc + libgcc, CA certificates, tzdata, user 65532 (nonroot); no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/elasticache-export-operator /elasticache-export-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/elasticache-export-operator", "run"]
