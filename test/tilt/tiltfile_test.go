package tilt

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// loopSettings is what `kinddev settings` prints, as far as the checks
// need it.
type loopSettings struct {
	Clusters        []loopCluster `json:"clusters"`
	DefaultRegistry string        `json:"default_registry"`
	HelmValuesFiles []string      `json:"helm_values_files"`
	HelmSet         []string      `json:"helm_set"`
	GOARCH          string        `json:"goarch"`
	Namespace       string        `json:"namespace"`
	KeySecret       string        `json:"key_secret"`
	BinDir          string        `json:"bin_dir"`
	ClusterPeersDir string        `json:"cluster_peers_dir"`
}

type loopCluster struct {
	Name         string `json:"name"`
	Context      string `json:"context"`
	DNSServiceIP string `json:"dns_service_ip"`
}

// chartValues are the --set values cluster i must get.
func chartValues(s loopSettings, i int) []string {
	c := s.Clusters[i]
	return append([]string{
		"clusterID=" + c.Name, "clusterKey.existingSecret=" + s.KeySecret,
		"dnsService.clusterIP=" + c.DNSServiceIP, "coredns.forward=" + c.DNSServiceIP,
	}, s.HelmSet...)
}

// binary is a binary of the loop and where the chart's values say its
// image is.
type binary struct{ name, component, image string }

func chartBinaries(t *testing.T, root string) []binary {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "charts", "wirespan", "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	type image struct {
		Image struct {
			Repository string `json:"repository"`
		} `json:"image"`
	}
	// Only the two images matter here; the rest of values.yaml is the
	// chart's business (sigs.k8s.io/yaml ignores unknown fields).
	var values struct {
		Operator image `json:"operator"`
		Gateway  image `json:"gateway"`
	}
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	if values.Operator.Image.Repository == "" || values.Gateway.Image.Repository == "" {
		t.Fatalf("values.yaml names no operator.image.repository or gateway.image.repository")
	}
	return []binary{
		{"wirespan-operator", "operator", values.Operator.Image.Repository},
		{"wirespan-gateway", "gateway", values.Gateway.Image.Repository},
	}
}

// loadTiltfile runs the Tiltfile with settingsYAML as tilt-settings.yaml
// ("" for none) and Tilt on kubeContext ("" for the first cluster's).
func loadTiltfile(t *testing.T, settingsYAML, kubeContext string) (*recorder, loopSettings, error) {
	t.Helper()
	var s loopSettings
	if err := json.Unmarshal(kinddev(t, settingsYAML, "settings"), &s); err != nil {
		t.Fatal(err)
	}
	if kubeContext == "" {
		// Where `make kind-up` leaves Tilt: on the first cluster.
		kubeContext = s.Clusters[0].Context
	}
	file := filepath.Join(t.TempDir(), "tilt-settings.yaml")
	if settingsYAML != "" {
		if err := os.WriteFile(file, []byte(settingsYAML), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := newRecorder(t, kubeContext, map[string]string{"WIRESPAN_TILT_SETTINGS": file})
	src, err := os.ReadFile(filepath.Join(r.root, "Tiltfile"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.run(t, src); err != nil {
		return r, s, err
	}
	// The checks go by what the Tiltfile itself read.
	var read loopSettings
	if err := json.Unmarshal([]byte(r.settingsJSON), &read); err != nil {
		t.Fatalf("settings the Tiltfile read: %v", err)
	}
	return r, read, nil
}

func TestTiltfileDefaultSettings(t *testing.T) {
	r, s, err := loadTiltfile(t, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Clusters) != 2 {
		t.Errorf("default settings have %d clusters, want two", len(s.Clusters))
	}
	checkLoop(t, r, s)
}

func TestTiltfileCustomSettings(t *testing.T) {
	r, s, err := loadTiltfile(t, `
clusters: [east, west, north]
gateway_nodes: 2
worker_nodes: 0
default_registry: localhost:5001
helm_set: ["crds.install=true"]
`, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Clusters) != 3 || s.Clusters[2].Context != "kind-north" {
		t.Fatalf("settings not read: %+v", s.Clusters)
	}
	if r.defaultRegistry != "localhost:5001" {
		t.Errorf("default_registry(%q), want the settings' localhost:5001", r.defaultRegistry)
	}
	checkLoop(t, r, s)
}

func TestTiltfileRefusesAnotherContext(t *testing.T) {
	_, _, err := loadTiltfile(t, "", "kind-somewhere-else")
	if err == nil || !strings.Contains(err.Error(), "make kind-up") {
		t.Fatalf("Tilt on another context: %v; want a failure that says to run make kind-up", err)
	}
}

// TestStandInsCatchTypos shows the harness fails on what Tilt would refuse:
// a misspelled built-in, a misspelled keyword, an extension it has no
// stand-in for.
func TestStandInsCatchTypos(t *testing.T) {
	r := newRecorder(t, "kind-wirespan-1", map[string]string{"WIRESPAN_TILT_SETTINGS": filepath.Join(t.TempDir(), "none.yaml")})
	src, err := os.ReadFile(filepath.Join(r.root, "Tiltfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ from, to, want string }{
		{"docker_build(\n", "docker_biuld(\n", "undefined: docker_biuld"},
		{"only = [", "only_files = [", "unexpected keyword argument \"only_files\""},
		{"version_settings(", "load(\"ext://restart_process\", \"docker_build_with_restart\")\nversion_settings(", "no stand-in"},
	} {
		if !strings.Contains(string(src), tc.from) {
			t.Fatalf("the Tiltfile has no %q to break", tc.from)
		}
		broken := strings.Replace(string(src), tc.from, tc.to, 1)
		rr := *r
		if err := rr.run(t, []byte(broken)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Tiltfile with %q: %v; want an error with %q", tc.to, err, tc.want)
		}
	}
}

// checkLoop checks what the Tiltfile asked Tilt to do against the settings
// it read and the repository.
func checkLoop(t *testing.T, r *recorder, s loopSettings) {
	t.Helper()
	bins := chartBinaries(t, r.root)
	first, others := s.Clusters[0], s.Clusters[1:]

	if r.versionConstraint == "" {
		t.Error("no version_settings(constraint=...): Tilt's helm() needs a Tilt that knows Helm 4")
	}

	// Every cluster is a context Tilt may touch, and no other.
	var contexts []string
	for _, c := range s.Clusters {
		contexts = append(contexts, c.Context)
	}
	if !sameSet(r.allowedContexts, contexts) {
		t.Errorf("allow_k8s_contexts(%v), want the clusters' %v", r.allowedContexts, contexts)
	}

	resources := map[string]bool{}
	local := map[string]*localResource{}
	for _, lr := range r.localResources {
		local[lr.name] = lr
		resources[lr.name] = true
	}
	for _, kr := range r.k8sResources {
		if resources[kr.newName] {
			t.Errorf("resource %s defined twice", kr.newName)
		}
		resources[kr.newName] = true
	}

	// Compiling: make build-static for the nodes' architecture into the
	// dev image's context, one resource per binary.
	for _, b := range bins {
		lr := local["compile-"+b.component]
		if lr == nil {
			t.Fatalf("no compile-%s resource", b.component)
		}
		want := fmt.Sprintf("make build-static GOOS=linux GOARCH=%s STATIC_DIR=%s STATIC_CMDS=%s", s.GOARCH, s.BinDir, b.component)
		if lr.cmd != want {
			t.Errorf("compile-%s runs %q, want %q", b.component, lr.cmd, want)
		}
		// make's dry run shows the binary lands where the image and the
		// live update take it from.
		dry := exec.Command("sh", "-c", strings.Replace(lr.cmd, "make ", "make -n --no-print-directory ", 1))
		dry.Dir = r.root
		out, err := dry.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "-o "+s.BinDir+"/wirespan-$cmd") {
			t.Errorf("%s: dry run %v:\n%s\nwant a go build writing %s/%s", lr.cmd, err, out, s.BinDir, b.name)
		}
		if !slices.Contains(lr.deps, b.component) {
			t.Errorf("compile-%s does not watch %s/", b.component, b.component)
		}
	}
	built := func(p string) bool {
		for _, b := range bins {
			if p == path.Join(s.BinDir, b.name) {
				return true
			}
		}
		return false
	}

	// The first cluster is Tilt's: images from the binaries, named as the
	// chart's values name them, and live-updated.
	if len(r.dockerBuilds) != len(bins) {
		t.Fatalf("%d docker_build calls, want one per binary", len(r.dockerBuilds))
	}
	for i, b := range bins {
		db := r.dockerBuilds[i]
		if db.ref != b.image {
			t.Errorf("docker_build(%q), but the chart's values run %s from %q: Tilt would not use the image", db.ref, b.name, b.image)
		}
		if db.buildArgs["BINARY"] != b.name {
			t.Errorf("docker_build %s: BINARY=%q", db.ref, db.buildArgs["BINARY"])
		}
		exists(t, r.root, db.context, db.dockerfile)
		for _, o := range db.only {
			if p := path.Join(db.context, o); !built(p) {
				exists(t, r.root, p)
			}
		}
		wantLive := []step{{"sync", path.Join(s.BinDir, b.name), "/tilt/" + b.name}, {"run", "/tilt/restart.sh", ""}}
		if fmt.Sprint(db.liveUpdate) != fmt.Sprint(wantLive) {
			t.Errorf("docker_build %s: live_update %v, want %v", db.ref, db.liveUpdate, wantLive)
		}
		if rel, err := filepath.Rel(db.context, path.Join(s.BinDir, b.name)); err != nil || !slices.Contains(db.only, rel) {
			t.Errorf("docker_build %s: the synced binary %s is not in the build's only=%v: Tilt would not see it change", db.ref, b.name, db.only)
		}
	}

	// The chart, into the first cluster, with its ID and its key.
	if len(r.helmCalls) != 1 {
		t.Fatalf("%d helm() calls, want one, for the first cluster", len(r.helmCalls))
	}
	h := r.helmCalls[0]
	if h.path != "charts/wirespan" || h.namespace != s.Namespace {
		t.Errorf("helm(%q, namespace=%q), want charts/wirespan into %s", h.path, h.namespace, s.Namespace)
	}
	exists(t, r.root, h.path)
	exists(t, r.root, h.values...)
	for _, want := range chartValues(s, 0) {
		if !slices.Contains(h.set, want) {
			t.Errorf("helm() for %s without --set %s (sets %v)", first.Name, want, h.set)
		}
	}
	firstImages := map[string]string{}
	for _, b := range bins {
		firstImages[b.image] = b.name
	}
	if len(r.k8sYAML) != 1 {
		t.Fatalf("%d k8s_yaml calls, want one, with the chart", len(r.k8sYAML))
	}
	// Tilt gets the rendered chart, every object of it, with root
	// filesystems writable for live update.
	renderedDocs, err := decodeYAML(h.rendered)
	if err != nil {
		t.Fatal(err)
	}
	deployedDocs, err := decodeYAML(r.k8sYAML[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(deployedDocs) != len(renderedDocs) {
		t.Errorf("k8s_yaml got %d objects, the chart renders %d", len(deployedDocs), len(renderedDocs))
	}
	checkRendered(t, h.rendered, firstImages, first.Name, false)
	workloads := checkRendered(t, r.k8sYAML[0], firstImages, first.Name, true)
	var chartRes *k8sResource
	for _, kr := range r.k8sResources {
		if kr.newName == first.Name+"-chart" {
			chartRes = kr
		}
	}
	if chartRes == nil || !slices.Contains(chartRes.resourceDeps, "prepare") {
		t.Fatalf("no %s-chart resource grouping the chart's objects after prepare: %+v", first.Name, chartRes)
	}
	// Every object that is not a workload is in it (CRDs, RBAC, Services),
	// named as Tilt names objects.
	var ids []string
	for _, d := range deployedDocs {
		o := d.(map[string]any)
		kind := o["kind"].(string)
		if kind == "Deployment" || kind == "DaemonSet" || kind == "StatefulSet" {
			continue
		}
		meta := o["metadata"].(map[string]any)
		id := fmt.Sprintf("%s:%s", meta["name"], strings.ToLower(kind))
		if ns, _ := meta["namespace"].(string); ns != "" {
			id += ":" + ns
		}
		ids = append(ids, id)
	}
	if !sameSet(chartRes.objects, ids) || len(ids) == 0 {
		t.Errorf("%s-chart groups %v, want the chart's other objects %v", first.Name, chartRes.objects, ids)
	}
	for _, w := range workloads {
		found := false
		for _, kr := range r.k8sResources {
			if kr.workload == w.name+":"+strings.ToLower(w.kind) {
				found = true
				if !slices.Contains(kr.labels, first.Name) {
					t.Errorf("%s is not labeled %s", kr.newName, first.Name)
				}
			}
		}
		if !found {
			t.Errorf("no k8s_resource for the workload %s %s", w.kind, w.name)
		}
	}

	prepare := local["prepare"]
	if prepare == nil || !strings.HasSuffix(prepare.cmd, " prepare") || !strings.Contains(prepare.cmd, "./hack/kinddev") {
		t.Errorf("prepare resource: %+v", prepare)
	}

	// Every other cluster, by its own context: images, chart, live update
	// of each binary, logs.
	for _, c := range others {
		images := local[c.Name+"-images"]
		chart := local[c.Name+"-chart"]
		if images == nil || chart == nil {
			t.Fatalf("cluster %s: no %[1]s-images or %[1]s-chart resource", c.Name)
		}
		// kinddev deploy, on the cluster's context, of what helm renders.
		argv := shellSplit(t, chart.cmd)
		dash := slices.Index(argv, "--")
		if dash < 0 || !slices.Equal(argv[dash-3:dash], []string{"deploy", "-context", c.Context}) {
			t.Fatalf("%s-chart runs %q, want kinddev deploy -context %s -- helm template ...", c.Name, argv, c.Context)
		}
		render := argv[dash+1:]
		want := []string{"helm", "template", "wirespan", "charts/wirespan", "--include-crds", "--namespace", s.Namespace}
		if len(render) < len(want) || !slices.Equal(render[:len(want)], want) {
			t.Errorf("%s-chart renders with %q, want it to start with %q", c.Name, render, want)
		}
		sets := flagValues(render, "--set")
		for _, w := range chartValues(s, slices.Index(s.Clusters, c)) {
			if !slices.Contains(sets, w) {
				t.Errorf("%s-chart without --set %s", c.Name, w)
			}
		}
		// Render what it deploys: the images it runs must be the ones
		// -images builds and hands to the cluster, and -sync updates.
		cmd := exec.Command(r.helm, render[1:]...)
		cmd.Dir = r.root
		rendered, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s-chart's values do not render: helm %v: %v", c.Name, render[1:], err)
		}
		otherImages := map[string]string{}
		for _, b := range bins {
			repo := ""
			for _, set := range sets {
				if v, ok := strings.CutPrefix(set, b.component+".image.repository="); ok {
					repo = v
				}
			}
			ref := repo + ":tilt-dev"
			otherImages[repo] = b.name
			if !strings.Contains(images.cmd, "-t "+ref+" ") {
				t.Errorf("%s-images does not build %s: %s", c.Name, ref, images.cmd)
			}
			hand := "kind load docker-image --name " + c.Name + " " + ref
			if s.DefaultRegistry != "" {
				hand = "docker push --quiet " + ref
				if !strings.HasPrefix(repo, s.DefaultRegistry+"/") {
					t.Errorf("%s runs %s, not from the registry %s", c.Name, repo, s.DefaultRegistry)
				}
			}
			if !strings.Contains(images.cmd, hand) {
				t.Errorf("%s-images does not %q: %s", c.Name, hand, images.cmd)
			}
			sync := local[c.Name+"-sync-"+b.component]
			if sync == nil {
				t.Fatalf("no %s-sync-%s resource", c.Name, b.component)
			}
			bin := path.Join(s.BinDir, b.name)
			wantSync := fmt.Sprintf("sync -context %s -image %s=%s", c.Context, repo, bin)
			if !strings.Contains(sync.cmd, wantSync) || !slices.Equal(sync.deps, []string{bin}) || sync.autoInit {
				t.Errorf("%s-sync-%s: cmd %q deps %v auto_init %v; want %q on changes of %s only", c.Name, b.component, sync.cmd, sync.deps, sync.autoInit, wantSync, bin)
			}
			if !strings.Contains(sync.cmd, hand) {
				t.Errorf("%s-sync-%s does not refresh the image for new pods (%q)", c.Name, b.component, hand)
			}
		}
		for _, w := range checkRendered(t, string(rendered), otherImages, c.Name, false) {
			logs := local[c.Name+"-"+w.name]
			if logs == nil || !strings.Contains(logs.serveCmd, "--context "+c.Context+" ") || !strings.Contains(logs.serveCmd, "--selector "+w.selector) {
				t.Errorf("no logs of %s in %s (--context %s --selector %s): %+v", w.name, c.Name, c.Context, w.selector, logs)
			}
		}
	}

	// The ClusterPeer folder goes to every cluster, after every chart
	// (the CRD) and after prepare (which writes it).
	peers := local["clusterpeers"]
	if peers == nil {
		t.Fatal("no clusterpeers resource")
	}
	for _, c := range s.Clusters {
		if !strings.Contains(peers.cmd, fmt.Sprintf("kubectl --context %s apply -f %s", c.Context, s.ClusterPeersDir)) {
			t.Errorf("the ClusterPeer folder is not applied to %s: %s", c.Name, peers.cmd)
		}
		if !slices.Contains(peers.resourceDeps, c.Name+"-chart") {
			t.Errorf("clusterpeers does not wait for %s-chart", c.Name)
		}
	}
	if !slices.Contains(peers.resourceDeps, "prepare") || !slices.Equal(peers.deps, []string{s.ClusterPeersDir}) {
		t.Errorf("clusterpeers: deps %v resource_deps %v", peers.deps, peers.resourceDeps)
	}
	if len(peers.links) < len(s.Clusters)*len(bins) {
		t.Errorf("clusterpeers links to %d logs, want each workload's in each cluster: %v", len(peers.links), peers.links)
	}

	// Every resource it depends on exists; every file it names exists or
	// is made by the loop.
	for _, lr := range r.localResources {
		for _, d := range lr.resourceDeps {
			if !resources[d] {
				t.Errorf("%s depends on %s, which is no resource", lr.name, d)
			}
		}
		for _, d := range lr.deps {
			if !built(d) && d != s.ClusterPeersDir {
				exists(t, r.root, d)
			}
		}
	}
	for _, kr := range r.k8sResources {
		for _, d := range kr.resourceDeps {
			if !resources[d] {
				t.Errorf("%s depends on %s, which is no resource", kr.newName, d)
			}
		}
	}
	exists(t, r.root, r.read...)
	for _, w := range r.watched {
		if w != r.env["WIRESPAN_TILT_SETTINGS"] {
			exists(t, r.root, w)
		}
	}
}

// workload is a rendered workload that runs one of the loop's binaries.
type workload struct{ name, kind, selector string }

// checkRendered finds the workloads of rendered YAML that run the images
// (repository to binary) and checks that the dev image can work in them:
// the image's entrypoint, start.sh, is not overridden by a command, and,
// with writable, the container may write the new binary. Each binary must
// run somewhere.
func checkRendered(t *testing.T, rendered string, images map[string]string, cluster string, writable bool) []workload {
	t.Helper()
	docs, err := decodeYAML(rendered)
	if err != nil {
		t.Fatal(err)
	}
	var out []workload
	running := map[string]bool{}
	for _, d := range docs {
		raw, _ := yaml.Marshal(d)
		var o struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Spec struct {
				Selector struct {
					MatchLabels map[string]string `json:"matchLabels"`
				} `json:"selector"`
				Template struct {
					Spec struct {
						Containers []struct {
							Name            string   `json:"name"`
							Image           string   `json:"image"`
							Command         []string `json:"command"`
							SecurityContext struct {
								ReadOnlyRootFilesystem *bool `json:"readOnlyRootFilesystem"`
							} `json:"securityContext"`
						} `json:"containers"`
					} `json:"spec"`
				} `json:"template"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(raw, &o); err != nil {
			t.Fatal(err)
		}
		if o.Kind != "Deployment" && o.Kind != "DaemonSet" && o.Kind != "StatefulSet" {
			continue
		}
		for _, c := range o.Spec.Template.Spec.Containers {
			repo, _, _ := strings.Cut(c.Image, "@")
			if i := strings.LastIndexByte(repo, ':'); i > strings.LastIndexByte(repo, '/') {
				repo = repo[:i]
			}
			bin, ok := images[repo]
			if !ok {
				continue
			}
			running[bin] = true
			if len(c.Command) > 0 {
				t.Errorf("%s: %s %s container %s sets command %v: it would bypass the dev image's /tilt/start.sh, and live update could not restart it", cluster, o.Kind, o.Metadata.Name, c.Name, c.Command)
			}
			if ro := c.SecurityContext.ReadOnlyRootFilesystem; writable && (ro == nil || *ro) {
				state := "unset (read-only in the chart)"
				if ro != nil {
					state = fmt.Sprint(*ro)
				}
				t.Errorf("%s: %s %s container %s: readOnlyRootFilesystem %s, want false: live update copies a binary in", cluster, o.Kind, o.Metadata.Name, c.Name, state)
			}
			var sel []string
			for k, v := range o.Spec.Selector.MatchLabels {
				sel = append(sel, k+"="+v)
			}
			slices.Sort(sel)
			out = append(out, workload{o.Metadata.Name, o.Kind, strings.Join(sel, ",")})
		}
	}
	for _, bin := range images {
		if !running[bin] {
			t.Errorf("%s: the chart runs no workload with %s's image (%v)", cluster, bin, images)
		}
	}
	return out
}

func exists(t *testing.T, root string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("the Tiltfile names %s, which does not exist: %v", p, err)
		}
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// shellSplit splits a command line the way sh does, by asking sh.
func shellSplit(t *testing.T, line string) []string {
	t.Helper()
	out, err := exec.Command("sh", "-c", `for a in `+line+`; do printf '%s\0' "$a"; done`).Output()
	if err != nil {
		t.Fatalf("sh cannot split %q: %v", line, err)
	}
	return strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
}

func flagValues(argv []string, flag string) []string {
	var out []string
	for i := 0; i+1 < len(argv); i++ {
		if argv[i] == flag {
			out = append(out, argv[i+1])
		}
	}
	return out
}
