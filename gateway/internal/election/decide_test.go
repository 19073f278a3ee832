package election

import (
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	held := func(holder string, since time.Time) Observation {
		return Observation{Known: true, Since: since, Record: Record{Exists: true, Holder: holder, Version: "7"}}
	}
	base := Input{Identity: "n1", Candidate: true, Now: t0, Duration: time.Second, RenewPeriod: 200 * time.Millisecond}
	for _, tc := range []struct {
		name string
		mod  func(*Input)
		want Action
	}{
		{"nothing read yet", func(in *Input) {}, Wait},
		{"no Lease: create it", func(in *Input) { in.Observed = Observation{Known: true, Since: t0} }, Create},
		{"no holder: take it", func(in *Input) { in.Observed = held("", t0) }, Acquire},
		{"another holder, renewed just now", func(in *Input) { in.Observed = held("n2", t0) }, Wait},
		{"another holder, silent less than Duration", func(in *Input) { in.Observed = held("n2", t0.Add(-999*time.Millisecond)) }, Wait},
		{"another holder, silent for Duration", func(in *Input) { in.Observed = held("n2", t0.Add(-time.Second)) }, Acquire},
		{"this node held it before it restarted", func(in *Input) { in.Observed = held("n1", t0) }, Acquire},
		{"holding, renewed recently", func(in *Input) {
			in.Observed, in.LastRenew = held("n1", t0), t0.Add(-100*time.Millisecond)
		}, Wait},
		{"holding, renew period passed", func(in *Input) {
			in.Observed, in.LastRenew = held("n1", t0), t0.Add(-200*time.Millisecond)
		}, Renew},
		{"holding, no longer a candidate", func(in *Input) {
			in.Observed, in.LastRenew, in.Candidate = held("n1", t0), t0, false
		}, Release},
		{"not a candidate, Lease free", func(in *Input) { in.Observed, in.Candidate = held("", t0), false }, Wait},
		{"not a candidate, holder silent", func(in *Input) {
			in.Observed, in.Candidate = held("n2", t0.Add(-time.Hour)), false
		}, Wait},
		{"not a candidate, no Lease", func(in *Input) { in.Observed, in.Candidate = Observation{Known: true}, false }, Wait},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := base
			tc.mod(&in)
			if got := Decide(in); got != tc.want {
				t.Errorf("Decide = %s, want %s", got, tc.want)
			}
		})
	}
}
