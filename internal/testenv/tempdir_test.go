package testenv

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// A running control plane keeps nothing in $TMPDIR that a killed test
// binary would leave behind (envtest makes a webhook-certificate folder
// there).
func TestStartLeavesNothingInTempDir(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	pattern := filepath.Join(os.TempDir(), "envtest-serving-certs-*")
	before, _ := filepath.Glob(pattern)
	env, err := Start(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := env.Stop(); err != nil {
			t.Error(err)
		}
	}()
	after, _ := filepath.Glob(pattern)
	for _, dir := range after {
		if !slices.Contains(before, dir) {
			t.Errorf("a running control plane keeps %s, which a killed test binary would leave behind", dir)
		}
	}
}
