// Package version is the version of Wirespan's binaries (the operator, the
// gateway and kubectl-wirespan), one for the whole module: they are built
// and released together, so `kubectl wirespan diagnose` can compare what
// each cluster runs.
package version

import "runtime/debug"

// Version is set at build time, as `make build` and the images do:
//
//	go build -ldflags "-X github.com/wirespan/wirespan/internal/version.Version=v0.3.0"
//
// Left "dev" (a plain `go build`, `go install` or `go run`), Get falls
// back to what the Go toolchain recorded in the binary.
var Version = "dev"

// Get returns the binary's version: Version when stamped; else the main
// module's version from the build info (a `go install …@v0.3.0` records
// the tag, and since Go 1.24 `go build` in a checkout records a
// pseudo-version of the commit, "+dirty" when it has changes); else the
// commit from the VCS settings; else "dev". Binaries built from the same
// checkout therefore agree even unstamped, as in the lab.
func Get() string {
	bi, _ := debug.ReadBuildInfo()
	return resolve(Version, bi)
}

// resolve is Get's decision, apart from the process's own build info so
// that it can be tested.
func resolve(stamped string, bi *debug.BuildInfo) string {
	if stamped != "" && stamped != "dev" {
		return stamped
	}
	if bi == nil {
		return "dev"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return "dev"
	}
	// git describe's short form: enough to find the commit, short enough
	// for a table.
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if modified == "true" {
		rev += "-dirty"
	}
	return rev
}
