package images

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wirespan/wirespan/internal/testenv"
)

// TestBuildStatic runs `make build-static` for this machine's architecture
// and for the other one of amd64 and arm64, and checks that what it makes
// is what the images need: Linux executables of the right machine with no
// dynamic loader and no shared libraries (they run on distroless static,
// which has no libc), stripped, and free of the build machine's paths.
func TestBuildStatic(t *testing.T) {
	if testing.Short() {
		t.Skip("builds both binaries twice: not with -short")
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	other := map[string]string{"amd64": "arm64", "arm64": "amd64"}[runtime.GOARCH]
	for _, arch := range []string{runtime.GOARCH, other} {
		if arch == "" {
			continue
		}
		t.Run(arch, func(t *testing.T) {
			dir := t.TempDir()
			start := time.Now()
			cmd := exec.Command("make", "--no-print-directory", "build-static", "GOARCH="+arch, "STATIC_DIR="+dir)
			cmd.Dir = root
			// GOOS is the target's (linux by default); one set in the
			// environment must not leak in.
			cmd.Env = withoutEnv(os.Environ(), "GOOS", "GOARCH")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("make build-static GOARCH=%s: %v\n%s", arch, err, out)
			}
			t.Logf("make build-static GOARCH=%s took %s", arch, time.Since(start).Round(time.Second))
			for _, name := range []string{"wirespan-operator", "wirespan-gateway"} {
				checkStatic(t, filepath.Join(dir, name), arch, root)
			}
		})
	}
}

func checkStatic(t *testing.T, path, arch, root string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer f.Close()
	name := filepath.Base(path)
	machine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
	if f.Machine != machine || f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX || f.Type != elf.ET_EXEC {
		t.Errorf("%s: machine %v, OS ABI %v, type %v; want %v Linux executable", name, f.Machine, f.OSABI, f.Type, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s: has a %v program header: dynamically linked", name, p.Type)
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("%s: needs shared libraries %v (%v)", name, libs, err)
	}
	for _, s := range f.Sections {
		if s.Name == ".symtab" || strings.HasPrefix(s.Name, ".debug_") || strings.HasPrefix(s.Name, ".zdebug_") {
			t.Errorf("%s: has section %s: not stripped (-s -w)", name, s.Name)
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(root+"/")) {
		t.Errorf("%s: contains the checkout's path %s: built without -trimpath", name, root)
	}
}

// withoutEnv is env without the named variables.
func withoutEnv(env []string, names ...string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(names, k) {
			out = append(out, kv)
		}
	}
	return out
}
