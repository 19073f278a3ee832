// Package vm boots the VM test tier's guest: a Debian kernel that has
// WireGuard (which the machines' own kernels lack), under qemu, with the
// host's /usr and a folder of test binaries shared over 9p. The guest runs
// one script and powers off; its console is streamed to the caller and its
// script's exit status returned.
//
//	host                                   guest (qemu, KVM or TCG)
//	hack/vm.sh ─► .cache/vm/<kernel>/      vmlinuz + initramfs.gz (/init: hack/vm-init.sh)
//	                modules/ ──── 9p ro ─► /guestmods (modprobe on demand)
//	/usr ────────────────────── 9p ro ──► /usr  (ip, nft, ss, ping, iperf3, libc)
//	work folder (run, *.test) ─ 9p rw ──► /work (the script; exit-status back)
//	console ◄──────────────── ttyS0 ────  everything the script prints
//
// The guest's root is the initramfs in memory, so nothing it does (network
// namespaces, links, modules) touches the host, and everything goes when
// qemu exits.
package vm

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Image is a prepared guest: a kernel, its modules and the initramfs.
type Image struct {
	// Kernel is the kernel's version, such as 6.1.0-48-amd64.
	Kernel string
	// Dir is the cache folder that holds it (.cache/vm/<kernel>).
	Dir string
}

// Prepare makes sure the guest for repo is built (hack/vm.sh: the first
// time it fetches the kernel package from Debian's archive and builds the
// initramfs; afterwards it only checks the cache) and returns it.
func Prepare(repo string) (*Image, error) {
	cmd := exec.Command(filepath.Join(repo, "hack", "vm.sh"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("hack/vm.sh: %w: %s", err, stderr.Bytes())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	dir := lines[len(lines)-1]
	kernel, err := os.ReadFile(filepath.Join(dir, "ready"))
	if err != nil {
		return nil, fmt.Errorf("hack/vm.sh printed %q, which is not a prepared guest: %w", dir, err)
	}
	return &Image{Kernel: strings.TrimSpace(string(kernel)), Dir: dir}, nil
}

func (img *Image) kernelPath() string    { return filepath.Join(img.Dir, "vmlinuz") }
func (img *Image) initramfsPath() string { return filepath.Join(img.Dir, "initramfs.gz") }
func (img *Image) modulesPath() string   { return filepath.Join(img.Dir, "modules") }
