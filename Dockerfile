# Berth container image.
#
#   docker build -t berth .
#   docker run -p 5000:5000 -v berth-data:/data berth
#
# The default (embedded SQLite + filesystem blobs under /data) is a single-node setup. For several
# replicas set BERTH_DATABASE_URL=postgres://... and BERTH_STORAGE_URL=s3://bucket: see
# docs/deployment.md and docker-compose.yml.
#
# Works with BuildKit and with the classic builder (DOCKER_BUILDKIT=0): no BuildKit-only syntax.

# ---- build ----------------------------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src

# Compile the dependencies alone first, against placeholder sources, so that this layer is reused
# while only Berth's own code changes.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src benches \
    && echo 'fn main() {}' > src/main.rs \
    && echo 'fn main() {}' > benches/registry.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src benches

# The real sources. `sqlx::migrate!` embeds migrations/ at compile time, so it is needed here.
COPY . .
# COPY keeps the context's mtimes, which may be older than the placeholder build: touch the crate
# roots so cargo rebuilds Berth itself.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked \
    && install -D -m 0755 target/release/berth /out/berth

# ---- runtime --------------------------------------------------------------------------------------
FROM debian:bookworm-slim

# ca-certificates: TLS to S3 and PostgreSQL endpoints (the S3 client also trusts the system store,
# so a private CA is added by installing it here). curl: the HEALTHCHECK below.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*

# A fixed, non-root uid/gid so volume ownership is predictable across rebuilds.
RUN groupadd --system --gid 10001 berth \
    && useradd --system --uid 10001 --gid berth --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin berth \
    && mkdir -p /data \
    && chown berth:berth /data

COPY --from=builder /out/berth /usr/local/bin/berth

ENV BERTH_DATA_DIR=/data \
    BERTH_LISTEN=0.0.0.0:5000

# Embedded SQLite database and filesystem blobs (unused when both PostgreSQL and S3 are configured).
VOLUME ["/data"]
WORKDIR /data
USER berth:berth
EXPOSE 5000

# Liveness only (/healthz answers as long as the process serves HTTP); readiness, which also checks
# the database and blob storage, is /readyz: use that for load balancers and orchestrators.
# The port follows BERTH_LISTEN; HTTPS (BERTH_TLS_CERT/BERTH_TLS_KEY) is tried when HTTP fails.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD port="${BERTH_LISTEN##*:}"; \
        curl -fsS -o /dev/null --max-time 4 "http://127.0.0.1:${port}/healthz" \
        || curl -fsSk -o /dev/null --max-time 4 "https://127.0.0.1:${port}/healthz" \
        || exit 1

# Berth handles SIGTERM itself (in-flight requests get [server] shutdown_grace_secs to finish), so it
# runs as PID 1 without an init shim. Give `docker stop` at least that long: --stop-timeout / stop_grace_period.
STOPSIGNAL SIGTERM
ENTRYPOINT ["berth"]
CMD ["serve"]
