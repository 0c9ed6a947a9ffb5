# One image with every Switchyard binary; the container's command picks the role.
#   docker build -t switchyard .
# Build stage: pingora-core builds zlib-ng (cmake); rustls needs no system TLS library, and
# protox compiles the protos in Rust (no protoc).
FROM rust:1.95-bookworm AS build
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked \
      -p switchyard-controlplane -p switchyard-dataplane -p swctl -p switchyard-loadtest \
 && mkdir /out \
 && cp target/release/switchyard-controlplane target/release/switchyard-dataplane \
       target/release/swctl target/release/switchyard-mock target/release/switchyard-loadtest /out/

FROM debian:bookworm-slim
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --create-home switchyard
COPY --from=build /out/ /usr/local/bin/
USER switchyard
ENV SWITCHYARD_DATA_DIR=/data
VOLUME /data
CMD ["switchyard-dataplane"]
