# The swh-scheduler binary on a slim Debian.
#   docker build -t swh-scheduler .
#   docker run --rm swh-scheduler --redis-url redis://redis:6379/0 serve --host 0.0.0.0
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY lua lua
RUN cargo build --release --locked --bin swh-scheduler

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tini \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/swh-scheduler /usr/local/bin/swh-scheduler
EXPOSE 5008
ENTRYPOINT ["/usr/bin/tini", "--", "swh-scheduler"]
CMD ["serve", "--host", "0.0.0.0"]
