package clusterid

import (
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	tests := []struct {
		name, flag, property string
		found                bool
		want, wantErr        string
	}{
		{name: "flag only", flag: "east", want: "east"},
		{name: "property only", property: "west", found: true, want: "west"},
		{name: "both agree", flag: "west", property: "west", found: true, want: "west"},
		{name: "both disagree", flag: "east", property: "west", found: true, wantErr: `--cluster-id="east" disagrees with ClusterProperty cluster.clusterset.k8s.io, which says "west"`},
		{name: "neither", wantErr: "no cluster ID: set --cluster-id"},
		{name: "flag not a label", flag: "East_1", wantErr: `cluster ID "East_1" is not usable`},
		{name: "property not a label", property: "a.b", found: true, wantErr: `cluster ID "a.b" is not usable`},
		{name: "property empty", property: "", found: true, wantErr: `cluster ID "" is not usable`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Resolve(tt.flag, tt.property, tt.found)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Resolve = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
