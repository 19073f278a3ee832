package testenv

import (
	"errors"
	"io/fs"
	"os"
	"testing"
)

// A running control plane keeps nothing in $TMPDIR that a killed test
// binary would leave behind (envtest makes a webhook-certificate folder
// there). The check names this control plane's own folder: other test
// binaries running at the same time make folders of their own.
func TestStartLeavesNothingInTempDir(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	env, err := Start(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := env.Stop(); err != nil {
			t.Error(err)
		}
	}()
	if env.servingCertDir == "" {
		t.Fatal("envtest made no webhook-certificate folder; this test no longer checks anything")
	}
	if _, err := os.Stat(env.servingCertDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a running control plane keeps %s (stat: %v), which a killed test binary would leave behind", env.servingCertDir, err)
	}
}
