package linux

import (
	"errors"
	"fmt"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"
)

// namespace is the network namespace a Kernel works on. The zero value (no
// handle) is the process's own namespace, in which do runs its function
// directly.
type namespace struct {
	path   string
	handle netns.NsHandle
}

// openNamespace opens the namespace named by spec: empty for the current
// one, a path ("/proc/123/ns/net", "/var/run/netns/red") or the name of a
// namespace made by `ip netns add`.
func openNamespace(spec string) (namespace, error) {
	if spec == "" {
		return namespace{handle: -1}, nil
	}
	path := spec
	if !strings.Contains(spec, "/") {
		path = "/var/run/netns/" + spec
	}
	h, err := netns.GetFromPath(path)
	if err != nil {
		return namespace{}, fmt.Errorf("open network namespace %s: %w", path, err)
	}
	return namespace{path: path, handle: h}, nil
}

// current reports whether the namespace is the process's own.
func (n namespace) current() bool { return n.handle == -1 }

func (n namespace) String() string {
	if n.current() {
		return "current"
	}
	return n.path
}

func (n namespace) close() error {
	if n.current() {
		return nil
	}
	return n.handle.Close()
}

// do runs fn with the calling thread in the namespace. For another namespace
// it runs fn on a fresh goroutine locked to its OS thread, and gives the
// thread back to the Go scheduler only once the thread is back in its own
// namespace; if that fails the thread stays locked and exits with the
// goroutine, so no other goroutine ever runs in the wrong namespace.
func (n namespace) do(fn func() error) error {
	if n.current() {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get thread network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(n.handle); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter network namespace %s: %w", n.path, err)
			return
		}
		err = fn()
		if rerr := netns.Set(orig); rerr != nil {
			errc <- errors.Join(err, fmt.Errorf("leave network namespace %s: %w", n.path, rerr))
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}
