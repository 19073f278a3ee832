package linux

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun"
)

// socketDir is where wireguard-go's ipc package puts UAPI sockets, and where
// wgctrl looks for them. It is the same for every network namespace.
const socketDir = "/var/run/wireguard"

// socketPath is the UAPI socket of the userspace device name.
func socketPath(name string) string { return filepath.Join(socketDir, name+".sock") }

// userspaceDevice is a wireguard-go device this process runs on a TUN link,
// with the UAPI listener through which wgctrl configures it.
type userspaceDevice struct {
	name string
	dev  *device.Device
	uapi net.Listener
	// served is closed when the UAPI accept loop has ended, which happens
	// on stop and when someone removes the socket file.
	served chan struct{}
}

// alive reports whether the device still runs and can be configured.
func (d *userspaceDevice) alive() bool {
	select {
	case <-d.served:
		return false
	case <-d.dev.Wait():
		return false
	default:
		return true
	}
}

// stop closes the UAPI listener (which removes the socket) and the device
// (which closes the TUN's file; the persistent link stays).
func (d *userspaceDevice) stop() error {
	err := d.uapi.Close()
	d.dev.Close()
	<-d.served
	// wireguard-go's listener reports its inotify watcher having closed
	// first as "file already closed"; the socket is removed all the same.
	if err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("close uapi socket of %s: %w", d.name, err)
	}
	return nil
}

// startUserspace runs a wireguard-go device on the TUN link name: a new,
// persistent one, or the existing one left by an earlier process when
// attach is true (mtu is then the link's own, so nothing changes).
func (k *Kernel) startUserspace(name string, mtu int, attach bool) (err error) {
	if answers(name) {
		return fmt.Errorf("a WireGuard device of another process answers on %s", socketPath(name))
	}
	var (
		tdev tun.Device
		dev  *device.Device
	)
	// Opening /dev/net/tun, and the sockets wireguard-go uses to find and
	// watch the link, act in the namespace of the calling thread.
	err = k.ns.do(func() error {
		var err error
		tdev, err = tun.CreateTUN(name, mtu)
		if err != nil {
			return err
		}
		if !k.ns.current() {
			tdev = &nsTUN{Device: tdev, ns: k.ns}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("open tun %s: %w", name, err)
	}
	defer func() {
		if err == nil {
			return
		}
		if dev != nil {
			dev.Close()
		} else {
			_ = tdev.Close()
		}
		if !attach {
			if l, ok, _ := k.link(name); ok {
				_ = k.nl.LinkDel(l)
			}
		}
	}()
	if err := setPersist(tdev.File(), true); err != nil {
		return fmt.Errorf("make tun %s persistent: %w", name, err)
	}

	bind := conn.NewDefaultBind()
	if !k.ns.current() {
		bind = &nsBind{Bind: bind, ns: k.ns}
	}
	log := k.log.WithValues("device", name)
	// wireguard-go calls Verbosef on its data path (keepalives, each
	// handshake, packets it drops): format only what is logged.
	verbosef := device.DiscardLogf
	if v := log.V(1); v.Enabled() {
		verbosef = func(format string, args ...any) { v.Info(fmt.Sprintf(format, args...)) }
	}
	dev = device.NewDevice(tdev, bind, &device.Logger{
		Verbosef: verbosef,
		Errorf:   func(format string, args ...any) { log.Error(fmt.Errorf(format, args...), "WireGuard device") },
	})

	f, err := ipc.UAPIOpen(name)
	if err != nil {
		return fmt.Errorf("open uapi socket %s: %w", socketPath(name), err)
	}
	uapi, err := ipc.UAPIListen(name, f)
	_ = f.Close() // UAPIListen works on a duplicate
	if err != nil {
		_ = os.Remove(socketPath(name))
		return fmt.Errorf("listen on uapi socket %s: %w", socketPath(name), err)
	}

	d := &userspaceDevice{name: name, dev: dev, uapi: uapi, served: make(chan struct{})}
	go func() {
		defer close(d.served)
		for {
			c, err := uapi.Accept()
			if err != nil {
				log.V(1).Info("UAPI listener ended", "reason", err.Error())
				return
			}
			go dev.IpcHandle(c)
		}
	}()
	k.devices[name] = d
	k.log.Info("Started userspace WireGuard device", "device", name, "attached", attach, "namespace", k.ns.String())
	return nil
}

// setPersist sets or clears TUNSETPERSIST on a TUN file: a persistent TUN
// link outlives the file (and the process) that made it.
func setPersist(f *os.File, on bool) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	v := 0
	if on {
		v = 1
	}
	var ioErr error
	if err := rc.Control(func(fd uintptr) { ioErr = unix.IoctlSetInt(int(fd), unix.TUNSETPERSIST, v) }); err != nil {
		return err
	}
	return ioErr
}

// answers reports whether a WireGuard device, of any process, accepts
// connections on the UAPI socket for name.
func answers(name string) bool {
	c, err := net.DialTimeout("unix", socketPath(name), time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// removeStaleSocket removes the UAPI socket for name if nothing answers on
// it (its process ended without removing it).
func removeStaleSocket(name string) error {
	if _, err := os.Lstat(socketPath(name)); err != nil || answers(name) {
		return nil
	}
	if err := os.Remove(socketPath(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale uapi socket: %w", err)
	}
	return nil
}

// nsBind opens a device's UDP sockets in the Kernel's namespace. wireguard-go
// opens them from whatever goroutine brings the device up; only needed when
// the Kernel works on a namespace other than the process's. (wireguard-go
// then skips its sticky-socket route listener, which only refreshes cached
// source addresses after routing changes.)
type nsBind struct {
	conn.Bind
	ns namespace
}

func (b *nsBind) Open(port uint16) (fns []conn.ReceiveFunc, actual uint16, err error) {
	err = b.ns.do(func() error {
		var err error
		fns, actual, err = b.Bind.Open(port)
		return err
	})
	return fns, actual, err
}

// nsTUN reads a TUN's MTU in the Kernel's namespace: wireguard-go looks it
// up by name with an ioctl, from whatever goroutine sees the link change.
type nsTUN struct {
	tun.Device
	ns namespace
}

func (t *nsTUN) MTU() (mtu int, err error) {
	err = t.ns.do(func() error {
		var err error
		mtu, err = t.Device.MTU()
		return err
	})
	return mtu, err
}
