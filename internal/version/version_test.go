package version

import (
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestResolve(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	const rev = "a7f0cc6d2b1e9f00c0ffee00000000000000abcd"
	for _, tc := range []struct {
		name    string
		stamped string
		bi      *debug.BuildInfo
		want    string
	}{
		{name: "stamped wins", stamped: "v0.3.0", bi: &debug.BuildInfo{Main: debug.Module{Version: "v0.2.0"}}, want: "v0.3.0"},
		{name: "go install of a tag", stamped: "dev", bi: &debug.BuildInfo{Main: debug.Module{Version: "v0.3.0"}}, want: "v0.3.0"},
		{name: "go build in a checkout (Go 1.24+)", stamped: "dev",
			bi:   &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20260101120000-a7f0cc6d2b1e+dirty"}, Settings: vcs(rev, "true")},
			want: "v0.0.0-20260101120000-a7f0cc6d2b1e+dirty"},
		{name: "devel with a commit", stamped: "dev", bi: &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "false")}, want: "a7f0cc6d2b1e"},
		{name: "devel with changes", stamped: "dev", bi: &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "true")}, want: "a7f0cc6d2b1e-dirty"},
		{name: "nothing recorded (-buildvcs=false, outside a checkout)", stamped: "dev", bi: &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, want: "dev"},
		{name: "no build info", stamped: "", want: "dev"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := resolve(tc.stamped, tc.bi); got != tc.want {
				t.Errorf("resolve(%q, …) = %q, want %q", tc.stamped, got, tc.want)
			}
		})
	}
}

func TestRegisterExposesOneSeries(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	if err := Register(reg, "gateway"); err != nil {
		t.Fatal(err)
	}
	want := "# HELP wirespan_build_info Always 1; its labels say which Wirespan component this is and the version it was built as.\n" +
		"# TYPE wirespan_build_info gauge\n" +
		`wirespan_build_info{component="gateway",version="` + Get() + `"} 1` + "\n"
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), BuildInfoName); err != nil {
		t.Error(err)
	}
	// A second registration is a programming error the binary reports at
	// start, not a silent second series.
	if err := Register(reg, "gateway"); err == nil {
		t.Error("registering twice succeeded")
	}
}
