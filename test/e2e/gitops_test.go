package e2e

// The GitOps example's ClusterPeer folder (examples/gitops/clusterpeers),
// applied as Flux or Argo CD would apply it, peers real clusters. The
// example's clusters do not exist, so each of its ClusterPeers is mapped
// to a cluster of a lab of its own (instance gitopsInstance): the name,
// key, endpoints and ranges become the lab cluster's, everything else
// stays as in the example, and the cluster the example puts behind NAT
// (no endpoints) is the lab's NAT cluster.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
	"sigs.k8s.io/yaml"
)

// gitopsInstance is this test's lab: the shared one is 1, lab_test.go
// uses 2 and 3, make bench 4.
const gitopsInstance, gitopsPrefix = "5", "wsl5"

// labFields are the ClusterPeer spec fields that name a real cluster's
// key, addresses and ranges: they come from the lab, the rest from the
// example.
var labFields = []string{"publicKey", "endpoints", "allowedCIDRs"}

// examplePeer is one ClusterPeer of the example folder.
type examplePeer struct {
	file   string
	object map[string]any
}

func (p examplePeer) name() string {
	return p.object["metadata"].(map[string]any)["name"].(string)
}

func (p examplePeer) spec() map[string]any {
	spec, _ := p.object["spec"].(map[string]any)
	return spec
}

// behindNAT: the example lists no endpoint for a cluster nobody can reach.
func (p examplePeer) behindNAT() bool {
	endpoints, _ := p.spec()["endpoints"].([]any)
	return len(endpoints) == 0
}

// readExamplePeers reads the example's ClusterPeer folder, sorted by
// cluster ID: example cluster i becomes lab cluster c<i+1>.
func readExamplePeers(t *testing.T) []examplePeer {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repo, "examples", "gitops", "clusterpeers", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no ClusterPeers in examples/gitops/clusterpeers: %v", err)
	}
	var peers []examplePeer
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		p := examplePeer{file: filepath.Base(f)}
		if err := yaml.UnmarshalStrict(raw, &p.object); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if p.object["kind"] != "ClusterPeer" {
			t.Fatalf("%s: a %v in the ClusterPeer folder", f, p.object["kind"])
		}
		peers = append(peers, p)
	}
	slices.SortFunc(peers, func(a, b examplePeer) int { return strings.Compare(a.name(), b.name()) })
	return peers
}

// mapToLab writes the example's ClusterPeers into dir, each made into the
// lab cluster it stands for: metadata.name and the labFields from the lab's
// own manifest (.lab/gitops/clusterpeers/<cluster>.yaml), all else as in
// the example, under the example's file names.
func mapToLab(t *testing.T, peers []examplePeer, lab *labStatus, dir string) {
	t.Helper()
	for i, p := range peers {
		c := lab.Clusters[i]
		raw, err := os.ReadFile(filepath.Join(lab.ClusterPeersDir, c.Name+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var own map[string]any
		if err := yaml.UnmarshalStrict(raw, &own); err != nil {
			t.Fatalf("the lab's manifest for %s: %v", c.Name, err)
		}
		ownSpec, _ := own["spec"].(map[string]any)
		for k := range ownSpec {
			if !slices.Contains(labFields, k) {
				t.Fatalf("the lab's manifest for %s has spec.%s, which this test does not map", c.Name, k)
			}
		}
		mapped := map[string]any{}
		for k, v := range p.object {
			mapped[k] = v
		}
		metadata := map[string]any{}
		for k, v := range p.object["metadata"].(map[string]any) {
			metadata[k] = v
		}
		metadata["name"] = c.Name
		mapped["metadata"] = metadata
		spec := map[string]any{}
		for k, v := range p.spec() {
			spec[k] = v
		}
		for _, k := range labFields {
			delete(spec, k)
			if v, ok := ownSpec[k]; ok {
				spec[k] = v
			}
		}
		mapped["spec"] = spec
		out, err := yaml.Marshal(mapped)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p.file), out, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("example cluster %s (%s) is lab cluster %s:\n%s", p.name(), p.file, c.Name, out)
	}
}

// TestGitOpsFolderPeersLabClusters brings up a lab with as many clusters
// as the example has, applies the example's ClusterPeer folder, mapped to
// the lab, to every cluster with `kubectl apply -R -f`, and waits until
// every cluster reports every other Connected and Ready. Then it rotates
// a cluster's key as docs/gitops.md says to.
func TestGitOpsFolderPeersLabClusters(t *testing.T) {
	peers := readExamplePeers(t)
	args := []string{"up", "--clusters", fmt.Sprint(len(peers))}
	var nat []string
	for i, p := range peers {
		if p.behindNAT() {
			nat = append(nat, fmt.Sprintf("c%d", i+1))
		}
	}
	switch len(nat) {
	case 0:
	case 1:
		args = append(args, "--nat", nat[0])
	default:
		t.Fatalf("the example puts %d clusters behind NAT; the lab puts at most one there (and two such clusters never connect)", len(nat))
	}

	dir := filepath.Join(t.TempDir(), "lab")
	if left := trace(t, gitopsPrefix, dir); len(left) > 0 {
		t.Fatalf("instance %s is not clean before the test: %v", gitopsInstance, left)
	}
	t.Cleanup(func() {
		if t.Failed() {
			keepLogs(dir)
		}
		if out, err := labCmd(dir, gitopsInstance, "down").CombinedOutput(); err != nil {
			t.Errorf("lab down: %v\n%s", err, out)
		}
		if left := trace(t, gitopsPrefix, dir); len(left) > 0 {
			t.Errorf("the lab left behind: %s", strings.Join(left, "\n"))
		}
	})
	start := time.Now()
	if out, err := labCmd(dir, gitopsInstance, args...).CombinedOutput(); err != nil {
		t.Fatalf("wirespan-lab %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("lab of %d clusters (NAT: %v) up in %v", len(peers), nat, time.Since(start).Round(10*time.Millisecond))
	lab, err := status(dir, gitopsInstance)
	if err != nil {
		t.Fatal(err)
	}

	folder := filepath.Join(t.TempDir(), "clusterpeers")
	if err := os.Mkdir(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	mapToLab(t, peers, lab, folder)
	for _, c := range lab.Clusters {
		out, err := exec.Command(kubectl, "--kubeconfig", c.Kubeconfig, "apply", "-R", "-f", folder).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl apply -R -f %s to %s: %v\n%s", folder, c.Name, err, out)
		}
	}

	start = time.Now()
	waitPeered(t, lab)
	t.Logf("every cluster connected to every other %v after the folder was applied", time.Since(start).Round(100*time.Millisecond))
	out, _ := exec.Command(kubectl, "--kubeconfig", lab.Clusters[0].Kubeconfig, "get", "clusterpeers", "-o", "wide").CombinedOutput()
	t.Logf("in %s:\n%s", lab.Clusters[0].Name, out)

	t.Run("key rotation", func(t *testing.T) { rotateKey(t, dir, lab, peers, folder) })
}

// waitPeered waits until every cluster of the lab reports every other
// Connected and Ready, and its own key as the one in Git.
func waitPeered(t *testing.T, lab *labStatus) {
	t.Helper()
	for _, c := range lab.Clusters {
		for _, o := range lab.Clusters {
			eventually(t, 90*time.Second, fmt.Sprintf("%s sees %s", c.Name, o.Name), func() error {
				p, err := clusterPeerAt(c.Kubeconfig, o.Name)
				if err != nil {
					return err
				}
				if c.Name == o.Name {
					if st, reason, msg := p.condition("KeyMatches"); st != "True" {
						return fmt.Errorf("self: KeyMatches=%s (%s): %s", st, reason, msg)
					}
					return nil
				}
				if st, reason, msg := p.condition("Connected"); st != "True" {
					return fmt.Errorf("Connected=%s (%s): %s", st, reason, msg)
				}
				if st, reason, msg := p.condition("Ready"); st != "True" {
					return fmt.Errorf("Ready=%s (%s): %s", st, reason, msg)
				}
				return nil
			})
		}
	}
}

func clusterPeerAt(kubeconfig, name string) (remotePeer, error) {
	var p remotePeer
	out, err := exec.Command(kubectl, "--kubeconfig", kubeconfig, "get", "clusterpeer", name, "-o", "json").CombinedOutput()
	if err != nil {
		return p, fmt.Errorf("%w: %s", err, out)
	}
	return p, json.Unmarshal(out, &p)
}

// rotateKey rotates the first cluster's key the way docs/gitops.md says:
// a new private key in its key Secret, the new public key in its
// ClusterPeer in Git, applied everywhere. Every tunnel to it must then
// handshake again with the new key, with no restart of anything.
func rotateKey(t *testing.T, dir string, lab *labStatus, peers []examplePeer, folder string) {
	c := lab.Clusters[0]
	priv, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	newKey, oldKey := priv.PublicKey().String(), c.PublicKey
	// The key goes in on stdin: never on a command line.
	secret := fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata:\n  name: wirespan-cluster-key\n  namespace: wirespan-system\n"+
		"type: Opaque\nstringData:\n  privateKey: %s\n  publicKey: %s\n", priv, newKey)
	// Handshakes count from the moment the rotation starts: a tunnel may
	// come back under the new key before the folder has reached every
	// cluster, and WireGuard then does not handshake again for two
	// minutes. (Handshake times have whole seconds.)
	rotated := time.Now().Truncate(time.Second)
	replace := exec.Command(kubectl, "--kubeconfig", c.Kubeconfig, "replace", "-f", "-")
	replace.Stdin = strings.NewReader(secret)
	if out, err := replace.CombinedOutput(); err != nil {
		t.Fatalf("replace %s's key Secret: %v\n%s", c.Name, err, out)
	}
	// Git: the first example file is the first cluster's.
	file := filepath.Join(folder, peers[0].file)
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), oldKey) {
		t.Fatalf("%s does not hold %s's key %s", file, c.Name, oldKey)
	}
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(string(raw), oldKey, newKey)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, o := range lab.Clusters {
		if out, err := exec.Command(kubectl, "--kubeconfig", o.Kubeconfig, "apply", "-R", "-f", folder).CombinedOutput(); err != nil {
			t.Fatalf("kubectl apply -R -f %s to %s: %v\n%s", folder, o.Name, err, out)
		}
	}
	applied := time.Now()

	eventually(t, 30*time.Second, c.Name+" uses its new key", func() error {
		out, err := exec.Command(kubectl, "--kubeconfig", c.Kubeconfig, "get", "clusterpeer", c.Name, "-o", "jsonpath={.status.publicKey}").CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		if string(out) != newKey {
			return fmt.Errorf("status.publicKey %q, want %s", out, newKey)
		}
		p, err := clusterPeerAt(c.Kubeconfig, c.Name)
		if err != nil {
			return err
		}
		if st, reason, msg := p.condition("KeyMatches"); st != "True" {
			return fmt.Errorf("KeyMatches=%s (%s): %s", st, reason, msg)
		}
		return nil
	})
	// Every other cluster's gateway has a fresh handshake with the new key
	// and no peer with the old one, and the first cluster's gateway a
	// fresh handshake with every other.
	for i, o := range lab.Clusters[1:] {
		eventually(t, 60*time.Second, fmt.Sprintf("%s handshakes with %s's new key", o.Name, c.Name), func() error {
			return freshHandshake(dir, lab, i+1, newKey, oldKey, rotated)
		})
		eventually(t, 60*time.Second, fmt.Sprintf("%s handshakes with %s after the rotation", c.Name, o.Name), func() error {
			return freshHandshake(dir, lab, 0, o.PublicKey, "", rotated)
		})
		target := c.Pods[0]
		if out, err := labCmd(dir, gitopsInstance, "exec", o.Name, "echo-0", "--", "ping", "-c", "1", "-W", "2", target.IP).CombinedOutput(); err != nil {
			t.Errorf("%s/echo-0 -> %s/%s (%s) after the rotation: %v\n%s", o.Name, c.Name, target.Name, target.IP, err, out)
		}
	}
	waitPeered(t, lab)
	t.Logf("%s's key rotated; tunnels up again %v after Git was applied", c.Name, time.Since(applied).Round(100*time.Millisecond))
}

// freshHandshake checks, with `wg show` on the gateway node of the lab's
// cluster i, that the peer with key has completed a handshake at or after since,
// and that no peer has the key gone (if set).
func freshHandshake(dir string, lab *labStatus, i int, key, gone string, since time.Time) error {
	c := lab.Clusters[i]
	var node, iface string
	for _, n := range c.Nodes {
		if n.Gateway {
			node, iface = n.Name, n.WireGuard
			break
		}
	}
	out, err := labCmd(dir, gitopsInstance, "exec", c.Name, node, "--", "wg", "show", iface, "latest-handshakes").CombinedOutput()
	if err != nil {
		return fmt.Errorf("wg show on %s: %w: %s", node, err, out)
	}
	var last int64 = -1
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if len(fields) != 2 {
			continue
		}
		if gone != "" && fields[0] == gone {
			return fmt.Errorf("%s still has a peer with the old key %s", node, gone)
		}
		if fields[0] == key {
			if last, err = strconv.ParseInt(fields[1], 10, 64); err != nil {
				return err
			}
		}
	}
	switch {
	case last < 0:
		return fmt.Errorf("%s has no peer %s:\n%s", node, key, out)
	case last < since.Unix():
		return fmt.Errorf("%s: last handshake with %s at %s, not after %s", node, key, time.Unix(last, 0).Format(time.TimeOnly), since.Format(time.TimeOnly))
	}
	return nil
}
