# trainwatch in a container: a build stage with the Rust toolchain, and a
# small runtime stage (debian:bookworm-slim) with the binary, CA
# certificates and a non-root user. State (the SQLite ledger, archives)
# lives in the volume /var/lib/trainwatch; the config is mounted read-only
# at /etc/trainwatch/config.toml. See docker-compose.yml and the README.

# Any Rust at or above the crate's rust-version (1.89) builds it.
FROM rust:1-bookworm AS build
WORKDIR /src
# Cargo reads every target the manifest declares, benches included.
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY templates templates
COPY benches benches
RUN cargo build --release --locked \
 && strip target/release/trainwatch

FROM debian:bookworm-slim
# ca-certificates: the HTTPS client verifies with the system's roots.
# Timezones are compiled into the binary (chrono-tz): no tzdata needed.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/trainwatch --create-home trainwatch
COPY --from=build /src/target/release/trainwatch /usr/local/bin/trainwatch
# The bundled sample organisation, so `docker compose run` can try a
# delivery with no token (docker/sample.toml serves it on loopback).
COPY sample/api /usr/share/trainwatch/sample/api
USER trainwatch
WORKDIR /var/lib/trainwatch
VOLUME ["/var/lib/trainwatch"]
ENV TRAINWATCH_CONFIG=/etc/trainwatch/config.toml
# /healthz and /metrics, when the config has [server] listen = "0.0.0.0:9464".
EXPOSE 9464
# trainwatch drains running jobs for up to 30 s on SIGTERM: give it 45
# (docker stop -t 45, or stop_grace_period in compose).
STOPSIGNAL SIGTERM
ENTRYPOINT ["trainwatch"]
CMD ["--log-format", "json", "run"]
