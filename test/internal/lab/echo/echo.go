// Package echo is the lab's workload: a server that answers every TCP
// connection and UDP datagram with who it is (cluster, pod, pod IP), so a
// test can tell which backend answered, and the matching client.
package echo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Identity is what a server answers with.
type Identity struct {
	Cluster string
	Pod     string // namespace/name
	IP      string
	// Client is the source address the server saw the request come from
	// (empty in a server's own Identity), so a test can tell whether
	// anything on the way translated it.
	Client string
}

// String is the one-line reply:
// cluster=c1 pod=default/echo-0 ip=10.1.0.10 client=10.2.0.10
func (id Identity) String() string {
	s := fmt.Sprintf("cluster=%s pod=%s ip=%s", id.Cluster, id.Pod, id.IP)
	if id.Client != "" {
		s += " client=" + id.Client
	}
	return s
}

// replyTo is the reply for a client at addr.
func replyTo(id Identity, addr net.Addr) []byte {
	if ap, err := netip.ParseAddrPort(addr.String()); err == nil {
		id.Client = ap.Addr().Unmap().String()
	}
	return []byte(id.String() + "\n")
}

// ParseReply reads a reply back into an Identity.
func ParseReply(reply string) (Identity, error) {
	var id Identity
	for f := range strings.FieldsSeq(reply) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return id, fmt.Errorf("reply %q: field %q is not key=value", reply, f)
		}
		switch k {
		case "cluster":
			id.Cluster = v
		case "pod":
			id.Pod = v
		case "ip":
			id.IP = v
		case "client":
			id.Client = v
		}
	}
	if id.Cluster == "" || id.Pod == "" || id.IP == "" {
		return id, fmt.Errorf("reply %q lacks cluster, pod or ip", reply)
	}
	return id, nil
}

// Serve answers on TCP and UDP port until ctx ends. A TCP client gets the
// reply as soon as it connects (so `cat </dev/tcp/IP/PORT` works); a UDP
// datagram of any content gets it back as one datagram.
func Serve(ctx context.Context, id Identity, port int) error {
	addr := net.JoinHostPort("", strconv.Itoa(port))
	var lc net.ListenConfig
	tl, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("listen tcp %s: %w", addr, err)
	}
	ul, err := lc.ListenPacket(ctx, "udp", addr)
	if err != nil {
		_ = tl.Close()
		return fmt.Errorf("listen udp %s: %w", addr, err)
	}
	go func() {
		<-ctx.Done()
		_ = tl.Close()
		_ = ul.Close()
	}()
	go func() {
		buf := make([]byte, 2048)
		for {
			_, from, err := ul.ReadFrom(buf)
			if err != nil {
				return
			}
			if _, err := ul.WriteTo(replyTo(id, from), from); err != nil {
				log.Printf("udp reply to %s: %v", from, err)
			}
		}
	}()
	log.Printf("echo: %s serving tcp and udp on %s", id, addr)
	for {
		conn, err := tl.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept: %w", err)
		}
		go func() {
			defer conn.Close()
			_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			_, _ = conn.Write(replyTo(id, conn.RemoteAddr()))
		}()
	}
}

// Probe asks the server at addr (host:port) over network ("tcp" or "udp")
// who it is, within timeout.
func Probe(network, addr string, timeout time.Duration) (Identity, error) {
	conn, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return Identity{}, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if network == "udp" {
		if _, err := conn.Write([]byte("who\n")); err != nil {
			return Identity{}, err
		}
	}
	buf := make([]byte, 512)
	n, err := conn.Read(buf)
	if err != nil && !errors.Is(err, io.EOF) {
		return Identity{}, fmt.Errorf("%s %s: %w", network, addr, err)
	}
	return ParseReply(string(buf[:n]))
}
