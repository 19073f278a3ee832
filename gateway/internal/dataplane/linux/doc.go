// Package linux implements dataplane.Kernel on Linux. It is the only package
// of Wirespan that imports netlink, wgctrl, wireguard-go and nftables; the
// rest of the gateway sees the dataplane interfaces.
//
// # One namespace per Kernel
//
// A Kernel works on one network namespace. With an empty Options.NetNS that
// is the namespace the process runs in, and nothing ever switches namespace:
// this is how the gateway runs (the lab starts it with `ip netns exec`).
// With Options.NetNS set, netlink and nftables use sockets bound to that
// namespace, and the few things that only act on "the namespace of the
// calling thread" (opening /dev/net/tun, the wgctrl generic netlink socket,
// /proc/sys/net, the UDP sockets of a userspace device) run on a goroutine
// locked to its OS thread for the duration of the call; see netns.go. Tests
// use that mode to drive several namespaces from one process. In that mode
// a userspace device's UDP sockets and MTU lookups are wrapped to run in
// the namespace (nsBind, nsTUN), and wireguard-go's sticky-socket route
// listener is off; the process's own namespace needs none of this.
//
// # Userspace WireGuard on a persistent TUN
//
// When the kernel has no WireGuard, a device is an embedded wireguard-go
// device on a TUN link. wgctrl (and wg(8)) configure it exactly like a
// kernel device, through its UAPI socket /var/run/wireguard/<name>.sock.
// That directory is not per network namespace, so a userspace device's
// name must be unique on the machine, not only in its namespace: two
// namespaces with a "wg0" each would share one socket path.
//
// The TUN is made persistent (TUNSETPERSIST): when the gateway process
// stops, the link, its addresses and the routes through it stay, and
// traffic is only paused instead of being sent along other routes. The next
// process calls CreateWireGuard with the same name; finding the link but no
// device answering on its socket (Device reports os.ErrNotExist), it
// attaches a fresh wireguard-go device to the existing TUN, keeping the
// ifindex and everything that refers to it. Close stops the devices this
// process runs and leaves their links; DeleteLink removes both.
//
// # Ownership tags
//
// Routes and rules are tagged with dataplane.RouteProtocol ("proto 201") and
// only tagged objects are listed or changed. Packet filtering lives in an
// nftables table of Wirespan's own, "inet wirespan"; no other table is read
// or changed. Neighbor entries cannot carry a tag: only permanent entries
// are listed or deleted.
package linux
