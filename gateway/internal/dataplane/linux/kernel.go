package linux

import (
	"errors"
	"fmt"
	"sync"

	"github.com/go-logr/logr"
	"github.com/vishvananda/netlink"
	"golang.zx2c4.com/wireguard/wgctrl"

	"github.com/wirespan/wirespan/gateway/internal/dataplane"
)

// WireGuardMode says which WireGuard implementation CreateWireGuard uses.
type WireGuardMode string

const (
	// WireGuardAuto uses the kernel's WireGuard when a wireguard link can be
	// created in the namespace, and the embedded userspace device otherwise.
	WireGuardAuto WireGuardMode = "auto"
	// WireGuardKernel uses only the kernel's WireGuard.
	WireGuardKernel WireGuardMode = "kernel"
	// WireGuardUserspace uses only the embedded userspace device.
	WireGuardUserspace WireGuardMode = "userspace"
)

// Options configure a Kernel.
type Options struct {
	// NetNS is the network namespace to work on: a path such as
	// /proc/<pid>/ns/net, or the name of a namespace made by `ip netns add`.
	// Empty means the namespace the process runs in.
	NetNS string
	// WireGuardMode picks the WireGuard implementation; empty means auto.
	WireGuardMode WireGuardMode
	// Log receives what the embedded WireGuard devices report and the
	// choices the Kernel makes. The zero value discards.
	Log logr.Logger
	// SysctlDir is where the kernel's /proc/sys is; empty means /proc/sys.
	// A container's /proc/sys is read-only, so a gateway in a Pod gets the
	// host's /proc/sys/net mounted writable elsewhere and is told here.
	SysctlDir string
}

// Kernel implements dataplane.Kernel for one network namespace.
type Kernel struct {
	ns   namespace
	nl   *netlink.Handle
	wg   *wgctrl.Client
	log  logr.Logger
	mode WireGuardMode
	// sysctlDir is Options.SysctlDir, defaulted.
	sysctlDir string

	// mu serializes all operations: none is frequent, and serializing keeps
	// the userspace device bookkeeping and the netlink handle simple.
	mu sync.Mutex
	// kernelWG caches whether kernel WireGuard works (auto mode), nil until
	// the first CreateWireGuard asks.
	kernelWG *bool
	// devices are the userspace WireGuard devices this process runs.
	devices map[string]*userspaceDevice
	closed  bool
}

var _ dataplane.Kernel = (*Kernel)(nil)

// New returns a Kernel for the namespace in opts. It changes nothing in the
// namespace.
func New(opts Options) (*Kernel, error) {
	mode := opts.WireGuardMode
	switch mode {
	case "":
		mode = WireGuardAuto
	case WireGuardAuto, WireGuardKernel, WireGuardUserspace:
	default:
		return nil, fmt.Errorf("unknown WireGuard mode %q (want auto, kernel or userspace)", mode)
	}
	ns, err := openNamespace(opts.NetNS)
	if err != nil {
		return nil, err
	}
	sysctlDir := opts.SysctlDir
	if sysctlDir == "" {
		sysctlDir = "/proc/sys"
	}
	k := &Kernel{ns: ns, log: opts.Log, mode: mode, sysctlDir: sysctlDir, devices: map[string]*userspaceDevice{}}
	if ns.current() {
		k.nl, err = netlink.NewHandle()
	} else {
		k.nl, err = netlink.NewHandleAt(ns.handle)
	}
	if err != nil {
		_ = ns.close()
		return nil, fmt.Errorf("open netlink in namespace %s: %w", ns, err)
	}
	// wgctrl's generic netlink socket belongs to the namespace of the
	// thread that opens it.
	err = ns.do(func() error {
		var err error
		k.wg, err = wgctrl.New()
		return err
	})
	if err != nil {
		k.nl.Close()
		_ = ns.close()
		return nil, fmt.Errorf("open wgctrl in namespace %s: %w", ns, err)
	}
	return k, nil
}

// Close stops the userspace WireGuard devices this Kernel runs and releases
// its sockets. The devices' links, addresses and routes stay, so that a
// later process can attach new devices to them (see CreateWireGuard).
func (k *Kernel) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil
	}
	k.closed = true
	var errs []error
	for name, d := range k.devices {
		errs = append(errs, d.stop())
		delete(k.devices, name)
	}
	errs = append(errs, k.wg.Close())
	k.nl.Close()
	errs = append(errs, k.ns.close())
	return errors.Join(errs...)
}

// lock takes k.mu and fails when the Kernel is closed.
func (k *Kernel) lock() error {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return errors.New("linux kernel: closed")
	}
	return nil
}

// dumpRetries is how often a netlink dump interrupted by a concurrent change
// is retried before giving up. An interrupted dump is incomplete, never a
// sign that something is gone.
const dumpRetries = 5

// dump runs a netlink dump, retrying when the kernel reports it interrupted.
func dump[T any](f func() (T, error)) (T, error) {
	for i := 0; ; i++ {
		v, err := f()
		if errors.Is(err, netlink.ErrDumpInterrupted) && i < dumpRetries {
			continue
		}
		return v, err
	}
}
