# Release image of wirespan-gateway (the gateway and the node agent). Build
# from the repository root:
#
#   docker buildx build -f build/gateway.Dockerfile --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=$(git describe --tags --always --dirty) .
#
# Built like build/operator.Dockerfile; see there.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY apis/ apis/
COPY internal/ internal/
COPY gateway/ gateway/
# The version the binary reports (make's VERSION, `git describe`): the
# build context has no .git to take it from.
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -X github.com/wirespan/wirespan/internal/version.Version=$VERSION" -o /out/wirespan-gateway ./gateway

# The same distroless base as the operator; no shell is needed either: the
# gateway speaks netlink, WireGuard's UAPI and nftables from Go, and writes
# sysctls itself, so no ip, wg or nft binary is in the image.
FROM gcr.io/distroless/static-debian13:nonroot
COPY --from=build /out/wirespan-gateway /wirespan-gateway
# Root, on purpose. The gateway changes its node's network (links, routes,
# rules, nftables, sysctls, /dev/net/tun) and needs CAP_NET_ADMIN for it.
# A capability the pod's securityContext adds reaches a non-root process
# only as an ambient capability, which Kubernetes does not grant: as UID
# 65532 the gateway would hold none. Which capabilities root holds is the
# securityContext's choice: NET_ADMIN, all others dropped, is what the
# gateway needs.
USER 0:0
ENTRYPOINT ["/wirespan-gateway"]
