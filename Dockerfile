# syntax=docker/dockerfile:1
# The master in a container: static binaries, a non-root user, the data in
# a volume. Instances run inside the same container, so the runtime image
# has /bin/sh, tmux and screen; build FROM it to add what your instances
# need (a JRE for Minecraft servers, say).
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t universe .
#   docker run -d -p 7000:7000 -p 25565-25600:25565-25600 -v universe:/var/lib/universe universe
#
# The first key, offline, before the first start:
#   docker run --rm -v universe:/var/lib/universe universe key create admin ALL --data /var/lib/universe/data

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ENV CGO_ENABLED=0
RUN go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/universe ./cmd/universe \
 && go build -trimpath -ldflags "-s -w" -o /out/universe-supervisor ./cmd/universe-supervisor \
 && go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/universe-agent ./cmd/universe-agent

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tmux screen \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/universe universe \
 && install -d -o universe -g universe -m 0700 /var/lib/universe
COPY --from=build /out/universe /out/universe-supervisor /out/universe-agent /usr/local/bin/
USER universe
WORKDIR /var/lib/universe
ENV UNIVERSE_DATA=/var/lib/universe/data \
    UNIVERSE_TEMPLATES=/var/lib/universe/templates \
    UNIVERSE_CONFIGURATIONS=/var/lib/universe/configuration \
    UNIVERSE_ADDR=:7000
VOLUME /var/lib/universe
EXPOSE 7000
ENTRYPOINT ["universe"]
CMD ["master", "--no-console"]
