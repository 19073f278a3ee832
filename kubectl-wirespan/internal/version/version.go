// Package version holds kubectl-wirespan's version. The operator and the
// gateway expose none yet, so `diagnose` compares their images instead.
package version

// Version is set at build time:
//
//	go build -ldflags "-X github.com/wirespan/wirespan/kubectl-wirespan/internal/version.Version=v0.3.0"
//
// A plain `go build` or `go install` leaves "dev", and then the module's
// version from the build info is shown when there is one.
var Version = "dev"
