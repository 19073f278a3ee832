package linux

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Sysctl reads the kernel parameter name ("net/ipv4/ip_forward") in the
// namespace, without the trailing newline.
func (k *Kernel) Sysctl(name string) (string, error) {
	if err := k.lock(); err != nil {
		return "", err
	}
	defer k.mu.Unlock()
	path, err := k.sysctlPath(name)
	if err != nil {
		return "", err
	}
	var b []byte
	// /proc/sys/net shows the namespace of the thread that opens it.
	err = k.ns.do(func() error {
		var err error
		b, err = os.ReadFile(path)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("read sysctl %s: %w", name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// SetSysctl sets the kernel parameter name in the namespace.
func (k *Kernel) SetSysctl(name, value string) error {
	if err := k.lock(); err != nil {
		return err
	}
	defer k.mu.Unlock()
	path, err := k.sysctlPath(name)
	if err != nil {
		return err
	}
	err = k.ns.do(func() error {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			return err
		}
		_, err = f.WriteString(value)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("set sysctl %s=%s: %w", name, value, err)
	}
	return nil
}

// sysctlPath maps "net/ipv4/ip_forward" to its file under the sysctl
// folder (/proc/sys), refusing names that would leave it.
func (k *Kernel) sysctlPath(name string) (string, error) {
	clean := filepath.Clean("/" + name)
	if name == "" || clean != "/"+name {
		return "", fmt.Errorf("sysctl %q: not a path under /proc/sys", name)
	}
	return filepath.Join(k.sysctlDir, clean), nil
}
