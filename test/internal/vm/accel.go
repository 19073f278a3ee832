package vm

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// kvmProbeTimeout bounds the KVM probe. A guest under working KVM runs
// the probe in about a second; on some machines (these among them) it
// hangs right after the kernel is decompressed, so the probe must not wait
// for it.
const kvmProbeTimeout = 15 * time.Second

// ProbeAccel returns "kvm" when a guest really boots and runs under KVM
// here, and "tcg" (software emulation, always available) otherwise, with
// the reason. /dev/kvm existing is not enough: see kvmProbeTimeout. The
// answer is kept in the image's cache folder for the host's current boot,
// so only the first test process after a reboot pays for the probe.
func (img *Image) ProbeAccel(ctx context.Context) (accel, why string, err error) {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return "tcg", fmt.Sprintf("no usable /dev/kvm (%v)", err), nil
	}
	_ = f.Close()
	bootID, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "", "", fmt.Errorf("read the host's boot id: %w", err)
	}
	cache := filepath.Join(img.Dir, "accel-"+strings.TrimSpace(string(bootID)))
	if b, err := os.ReadFile(cache); err == nil {
		accel, why, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
		return accel, why + " (probed earlier in this boot)", nil
	}
	accel, why = "kvm", "a guest booted under KVM"
	if err := img.probeKVM(ctx); err != nil {
		if ctx.Err() != nil {
			return "", "", err
		}
		accel, why = "tcg", fmt.Sprintf("KVM did not run a guest: %v", err)
	}
	if err := os.WriteFile(cache, []byte(accel+" "+why+"\n"), 0o644); err != nil {
		return "", "", fmt.Errorf("keep the KVM probe's answer: %w", err)
	}
	return accel, why, nil
}

// probeKVM boots a guest under KVM that only exits 0.
func (img *Image) probeKVM(ctx context.Context) error {
	work, err := os.MkdirTemp("", "wirespan-vm-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	ctx, cancel := context.WithTimeoutCause(ctx, kvmProbeTimeout,
		fmt.Errorf("no answer in %v", kvmProbeTimeout))
	defer cancel()
	status, err := img.Run(ctx, RunOptions{Work: work, Script: "exit 0\n", Console: io.Discard, Accel: "kvm", CPUs: 1})
	if err != nil {
		return err
	}
	if status != 0 {
		return fmt.Errorf("the probe exited %d", status)
	}
	return nil
}
