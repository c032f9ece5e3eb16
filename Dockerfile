# The Airlock control plane as a container image, built from the release artifacts:
#   npm run release && docker build -t airlock-control-plane .
# It installs the same .deb as a host would (the package brings its own Node.js runtime) and runs
# `airlock serve` as the unprivileged airlock user. The embedded database lives in the volume
# /var/lib/airlock/control-plane; set DATABASE_URL to use PostgreSQL instead. This image is not
# built or run in CI (no container runtime there): see README, "Install".
FROM debian:12-slim

COPY dist/release/airlock-control-plane_*_amd64.deb /tmp/
RUN apt-get update \
 && apt-get install -y --no-install-recommends /tmp/airlock-control-plane_*_amd64.deb \
 && rm -rf /var/lib/apt/lists/* /tmp/airlock-control-plane_*_amd64.deb

ENV AIRLOCK_DATA_DIR=/var/lib/airlock/control-plane \
    AIRLOCK_HOST=0.0.0.0 \
    AIRLOCK_PORT=7443
VOLUME ["/var/lib/airlock/control-plane"]
EXPOSE 7443
USER airlock
WORKDIR /var/lib/airlock

# /healthz answers 200 without credentials; the packaged Node.js fetches it (the image has no curl).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["/usr/lib/airlock/node", "-e", "fetch('http://127.0.0.1:' + (process.env.AIRLOCK_PORT || '7443') + '/healthz').then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))"]

ENTRYPOINT ["/usr/bin/airlock"]
CMD ["serve"]
