# One image for both halves of iperf3-monitor: the iperf3 server of the
# DaemonSet (`iperf3 -s`) and the measurement job (`iperf3-monitor run`).
#
# Targets:
#   runtime (default)      builds the release binary in the `build` stage
#   runtime-from-binary    takes a binary already built by
#                          `cargo build --release --locked` on a glibc no newer
#                          than the runtime's (scripts/build-image.sh)
#
# Base images are build arguments so that a builder without a registry can
# pass images of its own (scripts/build-image.sh makes them with debootstrap).
ARG BUILDER_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${BUILDER_IMAGE} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
COPY src ./src
RUN cargo build --release --locked \
    && install -D -m 0755 target/release/iperf3-monitor /out/iperf3-monitor

FROM ${RUNTIME_IMAGE} AS runtime-base
# Debian stable only takes security fixes, and a pinned version disappears
# from the archive at the next point release: the base image pins the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends iperf3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 65532 iperf3-monitor \
    && useradd --uid 65532 --gid 65532 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin iperf3-monitor
EXPOSE 5201/tcp 5201/udp
USER 65532:65532
ENTRYPOINT ["iperf3-monitor"]
CMD ["--help"]

FROM runtime-base AS runtime-from-binary
COPY target/release/iperf3-monitor /usr/local/bin/iperf3-monitor

FROM runtime-base AS runtime
COPY --from=build /out/iperf3-monitor /usr/local/bin/iperf3-monitor
