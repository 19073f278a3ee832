package linux

import (
	"errors"
	"fmt"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// CreateWireGuard creates the WireGuard device name, down and without
// addresses: a kernel device when the mode allows and the kernel can, an
// embedded userspace device on a persistent TUN otherwise.
//
// It is idempotent: a kernel WireGuard link of that name, or a userspace
// device this Kernel runs, is left alone. A TUN link of that name with no
// device answering on its UAPI socket (left by an earlier process) gets a
// new userspace device attached, keeping the link, its ifindex, addresses
// and routes. mtu is not applied to an existing link.
func (k *Kernel) CreateWireGuard(name string, mtu int) error {
	if err := k.lock(); err != nil {
		return err
	}
	defer k.mu.Unlock()
	if d, ok := k.devices[name]; ok {
		if d.alive() {
			return nil
		}
		// The device died or lost its socket: replace it.
		delete(k.devices, name)
		if err := d.stop(); err != nil {
			k.log.Error(err, "Stopping dead userspace WireGuard device", "device", name)
		}
	}
	l, ok, err := k.link(name)
	if err != nil {
		return fmt.Errorf("create wireguard %s: %w", name, err)
	}
	if ok {
		switch kind := linkKind(l); {
		case kind == "wireguard":
			return nil
		case kind == "tun" && k.mode != WireGuardKernel:
			if err := k.startUserspace(name, l.Attrs().MTU, true); err != nil {
				return fmt.Errorf("attach userspace wireguard to existing tun %s: %w", name, err)
			}
			return nil
		default:
			return fmt.Errorf("create wireguard %s: a %s link of that name exists", name, kind)
		}
	}

	if k.mode != WireGuardUserspace && (k.kernelWG == nil || *k.kernelWG) {
		err := k.nl.LinkAdd(&netlink.Wireguard{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: mtu}})
		switch {
		case err == nil:
			k.setKernelWG(true)
			return nil
		case k.mode == WireGuardAuto && errors.Is(err, unix.EOPNOTSUPP):
			// "Unknown device type": no WireGuard in this kernel.
			k.setKernelWG(false)
		default:
			return fmt.Errorf("create kernel wireguard %s: %w", name, err)
		}
	}
	if err := k.startUserspace(name, mtu, false); err != nil {
		return fmt.Errorf("create userspace wireguard %s: %w", name, err)
	}
	return nil
}

// setKernelWG records, once, whether kernel WireGuard works.
func (k *Kernel) setKernelWG(works bool) {
	if k.kernelWG != nil {
		return
	}
	k.kernelWG = &works
	impl := "userspace"
	if works {
		impl = "kernel"
	}
	k.log.Info("Chose WireGuard implementation", "implementation", impl, "namespace", k.ns.String())
}

// Device returns the WireGuard device name as wgctrl reads it. When no
// device answers for name (no link, or a TUN link whose userspace device is
// gone) the error wraps os.ErrNotExist.
func (k *Kernel) Device(name string) (*wgtypes.Device, error) {
	if err := k.lock(); err != nil {
		return nil, err
	}
	defer k.mu.Unlock()
	if err := k.wgReachable(name); err != nil {
		return nil, fmt.Errorf("get wireguard device %s: %w", name, err)
	}
	d, err := k.wg.Device(name)
	if err != nil {
		return nil, fmt.Errorf("get wireguard device %s: %w", name, wgError(name, err))
	}
	return d, nil
}

// ConfigureDevice applies cfg to the WireGuard device name.
func (k *Kernel) ConfigureDevice(name string, cfg wgtypes.Config) error {
	if err := k.lock(); err != nil {
		return err
	}
	defer k.mu.Unlock()
	if err := k.wgReachable(name); err != nil {
		return fmt.Errorf("configure wireguard device %s: %w", name, err)
	}
	if err := k.wg.ConfigureDevice(name, cfg); err != nil {
		return fmt.Errorf("configure wireguard device %s: %w", name, wgError(name, err))
	}
	return nil
}

// wgReachable checks that the link is in this Kernel's namespace: wgctrl
// finds userspace devices by socket name, in every namespace at once.
func (k *Kernel) wgReachable(name string) error {
	_, ok, err := k.link(name)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("no link: %w", os.ErrNotExist)
	}
	return nil
}

// wgError makes "a socket file nobody listens on" (the process that ran
// the device ended) read as "no such device".
func wgError(name string, err error) error {
	if errors.Is(err, unix.ECONNREFUSED) {
		return fmt.Errorf("no device answers on %s: %w (%w)", socketPath(name), os.ErrNotExist, err)
	}
	return err
}
