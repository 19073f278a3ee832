# Release image of wirespan-operator. Build from the repository root:
#
#   docker buildx build -f build/operator.Dockerfile --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=$(git describe --tags --always --dirty) .
#
# The binary is built the way `make build-static` builds it (static, no
# build paths, stripped; test/images checks the flags match), cross-compiled
# on the build machine's own platform, so a multi-platform build needs no
# emulation.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY apis/ apis/
COPY internal/ internal/
COPY operator/ operator/
# The version the binary reports (make's VERSION, `git describe`): the
# build context has no .git to take it from.
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -X github.com/wirespan/wirespan/internal/version.Version=$VERSION" -o /out/wirespan-operator ./operator

# distroless static: no shell, no package manager, CA certificates and
# /etc/passwd only. The operator needs no privilege at all: it talks to the
# API server and nothing else, so it runs as the image's nonroot user.
FROM gcr.io/distroless/static-debian13:nonroot
COPY --from=build /out/wirespan-operator /wirespan-operator
USER 65532:65532
ENTRYPOINT ["/wirespan-operator"]
