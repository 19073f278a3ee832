// Package images tests the container images and the binaries in them,
// without Docker (there is none on the build machines): the Dockerfiles'
// structure against the Makefile's release build, the release build itself
// (static ELF binaries for two architectures), and the start and restart
// scripts of Tilt's dev image, run for real.
package images

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/wirespan/wirespan/internal/testenv"
)

// instruction is one Dockerfile instruction: its keyword in upper case and
// its arguments, continuation lines joined.
type instruction struct {
	cmd, args string
	line      int
}

// parseDockerfile splits a Dockerfile into instructions. It is deliberately
// small: comments, blank lines and backslash continuations, which is all
// the project's Dockerfiles use. What it does not understand (parser
// directives such as escape or syntax, heredocs) it refuses, so a
// Dockerfile that outgrows it fails this test instead of being misread.
// (BuildKit's own parser would mean requiring github.com/moby/buildkit,
// whose newest releases raise a dozen of the operator's dependencies, for
// three small files.)
func parseDockerfile(text string) ([]instruction, error) {
	var (
		out     []instruction
		pending *instruction
		started bool
	)
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") {
			if !started && regexp.MustCompile(`^#\s*[a-zA-Z]+\s*=`).MatchString(line) {
				return nil, fmt.Errorf("line %d: parser directive %q: not understood by this check", n, line)
			}
			continue // a comment, also inside a continued instruction
		}
		if line == "" {
			continue
		}
		started = true
		cont := strings.HasSuffix(line, `\`)
		line = strings.TrimSpace(strings.TrimSuffix(line, `\`))
		if pending == nil {
			cmd, args, _ := strings.Cut(line, " ")
			pending = &instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: n}
		} else {
			pending.args += " " + line
		}
		if !cont {
			if strings.Contains(pending.args, "<<") {
				return nil, fmt.Errorf("line %d: heredoc: not understood by this check", pending.line)
			}
			out = append(out, *pending)
			pending = nil
		}
	}
	if pending != nil {
		return nil, fmt.Errorf("line %d: continuation at end of file", pending.line)
	}
	return out, sc.Err()
}

// stage is a FROM and the instructions after it.
type stage struct {
	from, platform, name string
	body                 []instruction
}

func stages(t *testing.T, path string) []stage {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ins, err := parseDockerfile(string(raw))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []stage
	for _, in := range ins {
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			var s stage
			if len(f) > 0 && strings.HasPrefix(f[0], "--platform=") {
				s.platform, f = strings.TrimPrefix(f[0], "--platform="), f[1:]
			}
			switch {
			case len(f) == 1:
				s.from = f[0]
			case len(f) == 3 && strings.EqualFold(f[1], "AS"):
				s.from, s.name = f[0], f[2]
			default:
				t.Fatalf("%s:%d: FROM %s: not understood", path, in.line, in.args)
			}
			out = append(out, s)
			continue
		}
		if len(out) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("%s:%d: %s before the first FROM", path, in.line, in.cmd)
			}
			continue
		}
		out[len(out)-1].body = append(out[len(out)-1].body, in)
	}
	return out
}

// only returns the arguments of the stage's instructions of kind cmd.
func (s stage) only(cmd string) []string {
	var out []string
	for _, in := range s.body {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

// pinned says whether an image reference names a version: a digest, or a
// tag other than latest.
func pinned(ref string) bool {
	if strings.Contains(ref, "@sha256:") {
		return true
	}
	slash := strings.LastIndexByte(ref, '/')
	colon := strings.LastIndexByte(ref, ':')
	return colon > slash && ref[colon+1:] != "latest"
}

// goBuild is what a `go build` command line sets: environment, flags
// (with their values), output and package.
type goBuild struct {
	env, flags map[string]string
	out, pkg   string
}

// parseGoBuild reads the first `go build` in a shell command line. Quotes
// are handled as sh would for the simple words these lines use.
func parseGoBuild(line string) (goBuild, error) {
	words, err := shellWords(line)
	if err != nil {
		return goBuild{}, err
	}
	b := goBuild{env: map[string]string{}, flags: map[string]string{}}
	i := 0
	for ; i < len(words) && strings.Contains(words[i], "="); i++ {
		k, v, _ := strings.Cut(words[i], "=")
		b.env[k] = v
	}
	if i+1 >= len(words) || filepath.Base(words[i]) != "go" || words[i+1] != "build" {
		return goBuild{}, fmt.Errorf("no `go build` in %q", line)
	}
	for i += 2; i < len(words); i++ {
		w := words[i]
		switch {
		case w == "-o":
			i++
			b.out = words[i]
		case w == "-ldflags" || w == "-tags" || w == "-gcflags":
			i++
			b.flags[w] = words[i]
		case strings.HasPrefix(w, "-"):
			k, v, _ := strings.Cut(w, "=")
			b.flags[k] = v
		default:
			b.pkg = w
		}
	}
	return b, nil
}

// shellWords splits a command line into words like sh does for unquoted,
// single- and double-quoted words (no expansions).
func shellWords(line string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		inW   bool
		quote rune
	)
	for _, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inW = r, true
		case r == ' ' || r == '\t':
			if inW {
				words = append(words, cur.String())
				cur.Reset()
				inW = false
			}
		default:
			cur.WriteRune(r)
			inW = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated quote in %q", line)
	}
	if inW {
		words = append(words, cur.String())
	}
	return words, nil
}

// makeStaticBuild is the go build line `make build-static` runs for one
// binary, from make's dry run, so the comparison is with the Makefile as
// it is, not with a copy of its flags.
func makeStaticBuild(t *testing.T, root, component string) goBuild {
	t.Helper()
	// VERSION=$VERSION: make prints the Dockerfile's build argument where
	// it would put its own `git describe`, so the flags compare equal.
	cmd := exec.Command("make", "--no-print-directory", "-n", "build-static", "GOOS=linux", "GOARCH=arm64", "STATIC_DIR=/out", "STATIC_CMDS="+component, "VERSION=$$VERSION")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n build-static: %v\n%s", err, out)
	}
	// The recipe is one shell loop; make -n prints it unexpanded by the
	// shell. Expand the loop variable the way the shell would.
	text := strings.ReplaceAll(string(out), "$cmd", component)
	for _, l := range strings.Split(text, ";") {
		l = strings.TrimSpace(strings.Trim(strings.TrimSpace(l), `\`))
		if strings.Contains(l, " build ") {
			b, err := parseGoBuild(l)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	t.Fatalf("no go build in `make -n build-static`:\n%s", out)
	return goBuild{}
}

// goDirective is the Go version go.mod declares, as major.minor.
func goDirective(t *testing.T, root string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(string(raw))
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	return m[1]
}

// sourceDirs lists the top-level folders of the module whose packages the
// main package pkg is built from.
func sourceDirs(t *testing.T, root, pkg string) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./"+pkg)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps ./%s: %v", pkg, err)
	}
	const module = "github.com/wirespan/wirespan/"
	var dirs []string
	for _, p := range strings.Fields(string(out)) {
		if rest, ok := strings.CutPrefix(p, module); ok {
			top, _, _ := strings.Cut(rest, "/")
			if !slices.Contains(dirs, top) {
				dirs = append(dirs, top)
			}
		}
	}
	slices.Sort(dirs)
	return dirs
}

func TestReleaseDockerfiles(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	goMinor := goDirective(t, root)
	for _, tc := range []struct {
		component, user string
	}{
		// The operator only talks to the API server: unprivileged.
		{"operator", "65532:65532"},
		// The gateway needs CAP_NET_ADMIN, which Kubernetes gives a
		// non-root process only as an ambient capability, and it grants
		// none (build/gateway.Dockerfile says more).
		{"gateway", "0:0"},
	} {
		t.Run(tc.component, func(t *testing.T) {
			binary := "wirespan-" + tc.component
			path := filepath.Join(root, "build", tc.component+".Dockerfile")
			st := stages(t, path)
			if len(st) != 2 {
				t.Fatalf("%d stages, want build and final", len(st))
			}
			build, final := st[0], st[1]

			for _, s := range st {
				if !pinned(s.from) {
					t.Errorf("FROM %s: not pinned (no tag, or latest)", s.from)
				}
			}
			if want := "golang:" + goMinor; build.from != want {
				t.Errorf("build stage FROM %s, want %s (go.mod's go directive)", build.from, want)
			}
			if build.platform != "$BUILDPLATFORM" {
				t.Errorf("build stage platform %q, want $BUILDPLATFORM: cross-compile, never emulate", build.platform)
			}
			if !strings.HasPrefix(final.from, "gcr.io/distroless/static") {
				t.Errorf("final stage FROM %s, want distroless static: no shell, no package manager", final.from)
			}

			// The go build is the Makefile's release build.
			var runs []goBuild
			for _, r := range build.only("RUN") {
				if strings.Contains(r, "go build") {
					b, err := parseGoBuild(r)
					if err != nil {
						t.Fatal(err)
					}
					runs = append(runs, b)
				}
			}
			if len(runs) != 1 {
				t.Fatalf("%d go build commands in the build stage, want 1", len(runs))
			}
			got, want := runs[0], makeStaticBuild(t, root, tc.component)
			if fmt.Sprint(got.flags) != fmt.Sprint(want.flags) {
				t.Errorf("go build flags %v, make build-static uses %v", got.flags, want.flags)
			}
			if got.env["CGO_ENABLED"] != "0" || want.env["CGO_ENABLED"] != "0" {
				t.Errorf("CGO_ENABLED: Dockerfile %q, make %q; both must be 0 (static)", got.env["CGO_ENABLED"], want.env["CGO_ENABLED"])
			}
			if got.env["GOOS"] != "$TARGETOS" || got.env["GOARCH"] != "$TARGETARCH" {
				t.Errorf("GOOS=%s GOARCH=%s, want the target platform's ($TARGETOS, $TARGETARCH)", got.env["GOOS"], got.env["GOARCH"])
			}
			if got.pkg != want.pkg || filepath.Base(got.out) != binary {
				t.Errorf("builds %s into %s, want %s into .../%s", got.pkg, got.out, want.pkg, binary)
			}

			// Every folder the binary's packages live in is copied in, and
			// .dockerignore lets it through.
			var copied []string
			for _, c := range build.only("COPY") {
				f := strings.Fields(c)
				for _, src := range f[:len(f)-1] {
					copied = append(copied, strings.TrimSuffix(src, "/"))
				}
			}
			allowed := dockerignoreAllows(t, root)
			for _, dir := range append(sourceDirs(t, root, tc.component), "go.mod", "go.sum") {
				if !slices.Contains(copied, dir) {
					t.Errorf("%s/ holds packages of %s but is not copied into the build stage (COPY %v)", dir, binary, copied)
				}
				if !slices.Contains(allowed, dir) {
					t.Errorf(".dockerignore keeps %s out of the build context", dir)
				}
			}

			if u := final.only("USER"); len(u) != 1 || u[0] != tc.user {
				t.Errorf("final stage USER %v, want %s", u, tc.user)
			}
			if e := final.only("ENTRYPOINT"); len(e) != 1 || e[0] != fmt.Sprintf(`["/%s"]`, binary) {
				t.Errorf("ENTRYPOINT %v, want exec form [\"/%s\"] (no shell in the image)", e, binary)
			}
			if c := final.only("COPY"); len(c) != 1 || c[0] != fmt.Sprintf("--from=%s %s /%s", build.name, got.out, binary) {
				t.Errorf("final stage COPY %v: want only the binary from the build stage", c)
			}
		})
	}
}

// dockerignoreAllows returns what .dockerignore lets into the build
// context. It must be an allowlist: everything out ("*"), then what the
// build needs back in ("!dir/"), so that no secret (the lab's and Tilt's
// keys under .lab and .cache, tilt-settings.yaml) can slip in.
func dockerignoreAllows(t *testing.T, root string) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns, allowed []string
	for _, l := range strings.Split(string(raw), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	if len(patterns) == 0 || patterns[0] != "*" {
		t.Fatalf(".dockerignore must start by ignoring everything (*), then allow back what the build needs; it starts with %q", patterns)
	}
	for _, p := range patterns[1:] {
		if a, ok := strings.CutPrefix(p, "!"); ok {
			allowed = append(allowed, strings.TrimSuffix(a, "/"))
		}
	}
	for _, secret := range []string{".lab", ".cache", "tilt-settings.yaml", "bin", "build"} {
		if slices.Contains(allowed, secret) {
			t.Errorf(".dockerignore lets %s into the build context", secret)
		}
	}
	return allowed
}

func TestParseDockerfileRefusesWhatItCannotRead(t *testing.T) {
	for _, text := range []string{
		"# escape=`\nFROM busybox:1.37.0\n",
		"# syntax=docker/dockerfile:1\nFROM busybox:1.37.0\n",
		"FROM busybox:1.37.0\nRUN <<EOF\necho hi\nEOF\n",
		"FROM busybox:1.37.0\nRUN echo \\\n",
	} {
		if _, err := parseDockerfile(text); err == nil {
			t.Errorf("parsed without error:\n%s", text)
		}
	}
	ins, err := parseDockerfile("# a comment\nFROM a:1 AS b\nRUN x \\\n  # inside\n  y\nUSER 1\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) != 3 || ins[1].cmd != "RUN" || ins[1].args != "x y" || ins[2].line != 6 {
		t.Errorf("parsed %+v", ins)
	}
}

func TestPinned(t *testing.T) {
	for ref, want := range map[string]bool{
		"golang:1.26": true, "golang": false, "golang:latest": false,
		"localhost:5000/x": false, "localhost:5000/x:v1": true, "x@sha256:abc": true,
	} {
		if pinned(ref) != want {
			t.Errorf("pinned(%q) = %v", ref, !want)
		}
	}
}
