# One image for both halves of iperf3-monitor: the iperf3 server of the
# DaemonSet (`iperf3 -s`) and the measurement job (`iperf3-monitor run`).
#
# The final stage is `scratch` plus exactly the files that run (docs/image.md):
# the binary, iperf3, coreutils' `timeout` (mesh mode execs it in the server
# pods), the shared objects ldd finds for them, the CA bundle, passwd/group
# with the user 65532 and the dpkg records of the packages those files come
# from. scripts/image-rootfs.sh collects them in a Debian stage of the same
# release the binary was linked against. No shell, no package manager.
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
# Not built, but Cargo.toml's [[bench]] names it: without it cargo refuses the manifest.
COPY benches ./benches
RUN cargo build --release --locked \
    && install -D -m 0755 target/release/iperf3-monitor /out/iperf3-monitor

# The Debian packages whose files the image takes.
FROM ${RUNTIME_IMAGE} AS packages
# Debian stable only takes security fixes, and a pinned version disappears
# from the archive at the next point release: the base image pins the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends iperf3 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY scripts/image-rootfs.sh /usr/local/sbin/image-rootfs.sh

FROM packages AS rootfs-from-binary
COPY target/release/iperf3-monitor /rootfs/usr/local/bin/iperf3-monitor
RUN /usr/local/sbin/image-rootfs.sh /rootfs

FROM packages AS rootfs
COPY --from=build /out/iperf3-monitor /rootfs/usr/local/bin/iperf3-monitor
RUN /usr/local/sbin/image-rootfs.sh /rootfs

FROM scratch AS runtime-base
ENV PATH=/usr/local/bin:/usr/bin \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
EXPOSE 5201/tcp 5201/udp
USER 65532:65532
ENTRYPOINT ["iperf3-monitor"]
CMD ["--help"]

FROM runtime-base AS runtime-from-binary
COPY --from=rootfs-from-binary /rootfs/ /

FROM runtime-base AS runtime
COPY --from=rootfs /rootfs/ /
