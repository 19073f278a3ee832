// Package gitops tests examples/gitops, the clusterset a user keeps in Git:
// every file parses strictly, every object is accepted by a real
// kube-apiserver (ours against Wirespan's CRDs, Flux's and Argo CD's against
// their own projects' CRDs, fetched as Go modules), the chart accepts every
// set of values the example gives it, and the files agree with each other
// (paths, cluster IDs, ranges). That the ClusterPeer folder really peers
// clusters is tested end to end in test/e2e (gitops_test.go).
package gitops

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/wirespan/wirespan/internal/testenv"
)

var (
	env *testenv.Env
	// repo is the repository's root; examples is examples/gitops in it.
	repo, examples string
)

func TestMain(m *testing.M) {
	flag.Parse()
	var err error
	if repo, err = testenv.RepoRoot(); err != nil {
		fmt.Fprintln(os.Stderr, "gitops:", err)
		os.Exit(1)
	}
	examples = filepath.Join(repo, "examples", "gitops")
	if testing.Short() {
		// The file checks need nothing else; the rest skip (needEnv).
		os.Exit(m.Run())
	}
	os.Exit(testenv.Main(m, testenv.Options{}, func(e *testenv.Env) error { env = e; return nil }))
}

// needEnv skips a test that needs the control plane and the pinned
// binaries, which -short runs go without.
func needEnv(t *testing.T) {
	t.Helper()
	if env == nil {
		t.Skip("needs a control plane and the pinned binaries (not run with -short)")
	}
}
