package echo

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"
)

func TestServeAnswersTCPAndUDP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()

	ctx, cancel := context.WithCancel(context.Background())
	id := Identity{Cluster: "c1", Pod: "default/echo-0", IP: "10.1.0.10"}
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, id, port) }()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for _, network := range []string{"tcp", "udp"} {
		var got Identity
		var err error
		for range 50 { // the server may not listen yet
			if got, err = Probe(network, addr, time.Second); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		want := id
		want.Client = "127.0.0.1" // the source address the server saw
		if err != nil || got != want {
			t.Errorf("%s: got %+v, %v; want %+v", network, got, err, want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve after cancel: %v", err)
	}
}

func TestParseReplyRefusesJunk(t *testing.T) {
	for _, junk := range []string{"", "hello", "cluster=c1 pod=x", "cluster=c1 pod=a ip"} {
		if _, err := ParseReply(junk); err == nil {
			t.Errorf("%q parsed", junk)
		}
	}
}
