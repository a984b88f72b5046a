# syntax=docker/dockerfile:1
# The wallet ledger's HTTP service.
#
#   docker build -t wallet-http .
#   docker run --rm -p 8080:8080 -e JWT_AUTHORITY=https://id.example -e DATABASE_URL=postgres://... wallet-http
#
# Build stage: the whole workspace is needed to build one of its members.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p wallet-http \
    && cp target/release/wallet-http /usr/local/bin/wallet-http

# Run stage: the binary alone, as an unprivileged user.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home wallet
COPY --from=build /usr/local/bin/wallet-http /usr/local/bin/wallet-http
USER wallet
ENV WALLET_BIND=0.0.0.0:8080 \
    LOG_FORMAT=json \
    RUST_LOG=info
EXPOSE 8080
# SIGTERM lets requests in flight finish before the process exits.
STOPSIGNAL SIGTERM
ENTRYPOINT ["wallet-http"]
CMD ["serve"]
