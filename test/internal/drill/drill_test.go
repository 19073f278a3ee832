package drill

import (
	"testing"
	"time"
)

func TestReplyTime(t *testing.T) {
	at, ok := replyTime("[1796169303.577090] 64 bytes from 10.1.2.10: icmp_seq=1 ttl=60 time=0.6 ms")
	if !ok || at.UnixMicro() != 1796169303577090 {
		t.Errorf("reply time %v, %v", at, ok)
	}
	for _, line := range []string{"PING 10.1.2.10 (10.1.2.10) 56(84) bytes of data.", "[1796169303.6] From 10.1.2.1 icmp_seq=2 Destination Host Unreachable", ""} {
		if _, ok := replyTime(line); ok {
			t.Errorf("%q read as a reply", line)
		}
	}
}

func TestEpochTime(t *testing.T) {
	at, ok := epochTime("1796169303.577090123\n")
	if !ok || at.UnixMicro() != 1796169303577090 {
		t.Errorf("time %v, %v", at, ok)
	}
	for _, line := range []string{"", "10.2.0.10", ";; connection timed out; no servers could be reached"} {
		if _, ok := epochTime(line); ok {
			t.Errorf("%q read as a time", line)
		}
	}
}

func TestLongestGap(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := []time.Time{t0, t0.Add(10 * time.Millisecond), t0.Add(900 * time.Millisecond), t0.Add(910 * time.Millisecond)}
	if got := longestGap(at, t0, t0.Add(920*time.Millisecond)); got != 890*time.Millisecond {
		t.Errorf("gap %v, want 890ms", got)
	}
	// Gaps that ended before from do not count; one still open does.
	if got := longestGap(at, t0.Add(905*time.Millisecond), t0.Add(2*time.Second)); got != 1090*time.Millisecond {
		t.Errorf("gap %v, want the open 1.09s", got)
	}
	if got := longestGap(nil, t0, t0.Add(time.Second)); got != time.Second {
		t.Errorf("no replies: gap %v", got)
	}
}
