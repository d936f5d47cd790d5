# The atf image: the runner and nothing else (cases come as a volume, from
# Git, or in an image built FROM this one).
#   docker build -t atf .
#   docker run --rm -v "$PWD:/work" atf run cases --env ci
FROM rust:1.89-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake g++ make pkg-config libssl-dev libsasl2-dev libzstd-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p atf \
 && install -m 0755 target/release/atf /usr/local/bin/atf

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 libsasl2-2 libzstd1 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 atf
COPY --from=build /usr/local/bin/atf /usr/local/bin/atf
USER atf
WORKDIR /work
ENTRYPOINT ["atf"]
CMD ["--help"]
