package testenv

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPinnedVersions checks that `make bins` built what hack/versions.env
// pins, with version ldflags applied: without them clients report
// v0.0.0-master and version-gated behaviour goes wrong. CoreDNS's version is
// a constant in its source; the ldflags only set the commit it reports, which
// for a release build is the tag.
func TestPinnedVersions(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the control-plane binaries")
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	v, err := Versions(root)
	if err != nil {
		t.Fatal(err)
	}
	if v["KUBE_VERSION"] == "" || v["ETCD_VERSION"] == "" || v["COREDNS_VERSION"] == "" {
		t.Fatalf("hack/versions.env lacks a version: %v", v)
	}
	assets, err := AssetsDir(root)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		args []string
		want string
	}{
		{[]string{"kube-apiserver", "--version"}, "Kubernetes " + v["KUBE_VERSION"]},
		{[]string{"kube-controller-manager", "--version"}, "Kubernetes " + v["KUBE_VERSION"]},
		{[]string{"kubectl", "version", "--client"}, "Client Version: " + v["KUBE_VERSION"]},
		{[]string{"kube-proxy", "--version"}, "Kubernetes " + v["KUBE_VERSION"]},
		{[]string{"etcd", "--version"}, "etcd Version: " + strings.TrimPrefix(v["ETCD_VERSION"], "v")},
		{[]string{"coredns", "-version"}, "CoreDNS-" + strings.TrimPrefix(v["COREDNS_VERSION"], "v") + "\n"},
		{[]string{"coredns", "-version"}, ", " + v["COREDNS_VERSION"] + "\n"},
	}
	for _, c := range checks {
		out, err := exec.Command(filepath.Join(assets, c.args[0]), c.args[1:]...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), c.want) {
			t.Errorf("%s: %v\n%s\nwant %q", strings.Join(c.args, " "), err, out, c.want)
		}
	}
}
