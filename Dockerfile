# One image, every role:  docker run IMAGE node   (or viscript --serve, …)
# Build: docker build -t skywire .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/skywire-mesh/skywire/internal/cli/buildinfo.Version=${VERSION}" \
      -o /skywire . \
 && mkdir -p /out/var/lib/skywire /out/tmp && chmod 1777 /out/tmp

FROM scratch
COPY --from=build /skywire /skywire
COPY --from=build /out/ /
ENV SKYWIRE_STATE_DIR=/var/lib/skywire
VOLUME ["/var/lib/skywire"]
ENTRYPOINT ["/skywire"]
CMD ["viscript", "--serve"]
