package tunnelwatch

import (
	"slices"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// testConfig is fixed here, so that tuning Defaults changes no case.
var testConfig = Config{Stall: 2 * time.Second, FirstHandshake: time.Second, MaxBackoff: 30 * time.Second}

var (
	keyA = wgtypes.Key{1}
	keyB = wgtypes.Key{2}
	t0   = time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)
)

// sample is one peer's counters at a time after t0.
type sample struct {
	at        time.Duration
	rx, tx    int64
	handshake bool
	want      bool // the watch restarts the peer at this sample
}

func peer(s sample) wgtypes.Peer {
	p := wgtypes.Peer{PublicKey: keyA, ReceiveBytes: s.rx, TransmitBytes: s.tx}
	if s.handshake {
		p.LastHandshakeTime = t0
	}
	return p
}

func TestStalled(t *testing.T) {
	const ms = time.Millisecond
	for _, tc := range []struct {
		name    string
		samples []sample
		// attempts are the restarts' Attempt, in order.
		attempts []int
	}{{
		name: "an initiation unanswered for a second is sent again",
		samples: []sample{
			{at: 0, tx: 0},
			{at: 250 * ms, tx: 148},
			{at: 750 * ms, tx: 148},
			{at: 1000 * ms, tx: 148, want: true},
			{at: 1250 * ms, tx: 148},
		},
	}, {
		name: "an initiation sent before the first sample counts from the peer's creation",
		samples: []sample{
			{at: 0, tx: 148},
			{at: 1000 * ms, tx: 148, want: true},
		},
	}, {
		name: "an answered initiation is left alone",
		samples: []sample{
			{at: 0, tx: 148},
			{at: 250 * ms, rx: 92, tx: 180, handshake: true},
			{at: 5 * time.Second, rx: 92, tx: 180, handshake: true},
		},
	}, {
		name: "a peer that answers every second is never restarted",
		samples: []sample{
			{at: 0, rx: 100, tx: 100, handshake: true},
			{at: 1000 * ms, rx: 200, tx: 200, handshake: true},
			{at: 2000 * ms, rx: 300, tx: 300, handshake: true},
			{at: 3000 * ms, rx: 400, tx: 400, handshake: true},
			{at: 4000 * ms, rx: 500, tx: 500, handshake: true},
		},
	}, {
		name: "sending with nothing back for two seconds is a broken session",
		samples: []sample{
			{at: 0, rx: 100, tx: 100, handshake: true},
			{at: 500 * ms, rx: 200, tx: 200, handshake: true},
			{at: 1500 * ms, rx: 200, tx: 400, handshake: true},
			{at: 2250 * ms, rx: 200, tx: 600, handshake: true},
			{at: 2500 * ms, rx: 200, tx: 700, handshake: true, want: true},
		},
	}, {
		name: "a silent peer this gateway does not send to is not broken",
		samples: []sample{
			{at: 0, rx: 100, tx: 100, handshake: true},
			{at: 250 * ms, rx: 200, tx: 200, handshake: true},
			{at: 30 * time.Second, rx: 200, tx: 200, handshake: true},
		},
	}, {
		name: "a peer that stays silent is restarted less and less often",
		samples: []sample{
			{at: 0, tx: 148},
			{at: 1 * time.Second, tx: 148, want: true},
			// Added again: a new initiation at once.
			{at: 1250 * ms, tx: 148},
			// Not before twice the wait since the last restart.
			{at: 2500 * ms, tx: 148},
			{at: 3 * time.Second, tx: 148, want: true},
			{at: 3250 * ms, tx: 148},
			{at: 6 * time.Second, tx: 148},
			{at: 7 * time.Second, tx: 148, want: true},
			{at: 7250 * ms, tx: 148},
			{at: 14 * time.Second, tx: 148},
			{at: 15 * time.Second, tx: 148, want: true},
		},
		attempts: []int{1, 2, 3, 4},
	}, {
		name: "a peer heard again starts the backoff afresh",
		samples: []sample{
			{at: 0, tx: 148},
			{at: 1 * time.Second, tx: 148, want: true},
			{at: 1250 * ms, rx: 92, tx: 180, handshake: true},
			{at: 2 * time.Second, rx: 200, tx: 300, handshake: true},
			{at: 4 * time.Second, rx: 200, tx: 500, handshake: true, want: true},
		},
		attempts: []int{1, 1},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			w := New(testConfig)
			var attempts []int
			for _, s := range tc.samples {
				got := w.Stalled([]wgtypes.Peer{peer(s)}, t0.Add(s.at))
				if restarted := len(got) == 1 && got[0].Key == keyA; restarted != s.want || len(got) > 1 {
					t.Fatalf("at %s (rx %d, tx %d): restarted %v, want %v", s.at, s.rx, s.tx, got, s.want)
				}
				for _, r := range got {
					attempts = append(attempts, r.Attempt)
				}
			}
			if tc.attempts != nil && !slices.Equal(attempts, tc.attempts) {
				t.Errorf("attempts %v, want %v", attempts, tc.attempts)
			}
		})
	}
}

func TestStalledForgetsPeersGoneAndResets(t *testing.T) {
	w := New(testConfig)
	both := []wgtypes.Peer{{PublicKey: keyA, TransmitBytes: 148}, {PublicKey: keyB, TransmitBytes: 148}}
	w.Stalled(both, t0)
	if got := w.Stalled(both[1:], t0.Add(time.Second)); !slices.Equal(got, []Restart{{Key: keyB, Attempt: 1}}) {
		t.Fatalf("restarted %v, want only B", got)
	}
	if _, ok := w.peers[keyA]; ok {
		t.Fatal("A is gone from the device but still watched")
	}
	w.Reset()
	// After a reset every clock starts again: nothing is due yet.
	if got := w.Stalled(both, t0.Add(10*time.Second)); len(got) != 0 {
		t.Fatalf("restarted %v right after a reset", got)
	}
}

func TestHeard(t *testing.T) {
	w := New(testConfig)
	if !w.Heard().IsZero() {
		t.Fatal("heard something with no peers")
	}
	w.Stalled([]wgtypes.Peer{{PublicKey: keyA, ReceiveBytes: 10, TransmitBytes: 10, LastHandshakeTime: t0}}, t0)
	w.Stalled([]wgtypes.Peer{{PublicKey: keyA, ReceiveBytes: 20, TransmitBytes: 20, LastHandshakeTime: t0}}, t0.Add(time.Second))
	// Silent while sending: restarted at 3 s, which is not hearing it,
	// and added again, which is not either.
	for _, at := range []time.Duration{2 * time.Second, 3 * time.Second} {
		if got := w.Stalled([]wgtypes.Peer{{PublicKey: keyA, ReceiveBytes: 20, TransmitBytes: int64(at), LastHandshakeTime: t0}}, t0.Add(at)); len(got) != int(at/time.Second)-2 {
			t.Fatalf("at %v: restarted %v", at, got)
		}
	}
	w.Stalled([]wgtypes.Peer{{PublicKey: keyA, TransmitBytes: 148}}, t0.Add(4*time.Second))
	if got := w.Heard(); !got.Equal(t0.Add(time.Second)) {
		t.Errorf("heard at %v, want %v", got, t0.Add(time.Second))
	}
}
