package testenv

import (
	"flag"
	"fmt"
	"os"
	"testing"
)

// Main is a TestMain for packages whose tests need a control plane: it starts
// one, runs setup, runs the tests, stops it and returns the exit code. With
// -short it runs nothing and says so, so `make test-short` works without the
// control-plane binaries.
func Main(m *testing.M, opts Options, setup func(*Env) error) int {
	flag.Parse()
	if testing.Short() {
		fmt.Println("skipping: these tests need a control plane (not run with -short)")
		return 0
	}
	env, err := Start(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop control plane:", err)
		}
	}()
	if setup != nil {
		if err := setup(env); err != nil {
			fmt.Fprintln(os.Stderr, "test setup:", err)
			return 1
		}
	}
	return m.Run()
}
