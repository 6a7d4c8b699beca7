# syntax=docker/dockerfile:1
# The posture image: one static (musl) binary serving every subcommand (operator,
# webhook, collect, scan, query, rules, crds), on a minimal base, as a non-root user.
# The chart and the collector Jobs pass only arguments: the entrypoint is posture.
#
#   docker build -t posture:dev .        # or: make image
#
# This machine has no Docker engine; `make musl` builds and checks the same binary.

FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN cargo build --release --locked --target x86_64-unknown-linux-musl -p posture --bin posture \
 && cp target/x86_64-unknown-linux-musl/release/posture /posture

# distroless static: no shell, no package manager, CA certificates and tzdata only.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /posture /posture
# The allocator returns freed pages at once (the chart sets the same; BENCHMARKS.md).
ENV MIMALLOC_PURGE_DELAY=0
USER 65532:65532
ENTRYPOINT ["/posture"]
