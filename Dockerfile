# lamina in a container (docs/in-container.md): `lamina build -t lamina .` here.
# BASE: a Debian bookworm image: debian:bookworm from a registry, or a local import of
# `mmdebstrap --variant=minbase bookworm bookworm.tar` (what tests/test_in_container.py uses).
ARG BASE=debian:bookworm
FROM ${BASE}
# runc runs the containers; iproute2/iptables the bridge; tini is run --init's;
# qemu-user-static the RUN steps of `build --platform` for other architectures.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 runc iproute2 iptables tini ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# lamina needs only Python's standard library: the package is copied, not pip-installed
COPY src/lamina /opt/lamina/lamina
ENV PYTHONPATH=/opt/lamina
# the store: a volume (an emptyDir or a PVC in Kubernetes), never the container's overlay
VOLUME /var/lib/lamina
WORKDIR /workspace
ENTRYPOINT ["python3", "-m", "lamina"]
CMD ["--help"]
