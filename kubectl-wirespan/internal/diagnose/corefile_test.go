package diagnose

import (
	"slices"
	"testing"
)

func TestParseCorefile(t *testing.T) {
	text := `.:53 {
    errors
    forward . /etc/resolv.conf
}
# a comment { with a brace
dns://clusterset.local.:53 { # trailing comment
    cache 5
    forward . 10.96.0.53 [fd00::53]:53 {
        policy sequential
    }
}
other.zone:53 { forward . 1.2.3.4 }
`
	blocks := parseCorefile(text)
	if len(blocks) != 3 {
		t.Fatalf("blocks = %+v", blocks)
	}
	if !servesZone(blocks[1].keys[0], "clusterset.local") || servesZone(blocks[0].keys[0], "clusterset.local") {
		t.Errorf("zones: %+v", blocks)
	}
	if want := []string{"10.96.0.53", "[fd00::53]:53"}; !slices.Equal(blocks[1].upstreams, want) {
		t.Errorf("upstreams = %v, want %v", blocks[1].upstreams, want)
	}
	if got := blocks[2].upstreams; !slices.Equal(got, []string{"1.2.3.4"}) {
		t.Errorf("one-line block upstreams = %v", got)
	}
	if upstreamHost("[fd00::53]:53") != "fd00::53" || upstreamHost("10.96.0.53") != "10.96.0.53" || upstreamHost("dns://10.0.0.1:53") != "10.0.0.1" {
		t.Error("upstreamHost")
	}
}
