// Package tilt tests the Tilt loop without Tilt, Docker or kind (none of
// them run on the build machines): the Tiltfile is executed with
// go.starlark.net against stand-ins for every Tilt built-in it calls, which
// record the calls; the kind configs are loaded and validated by kind's own
// code; their address ranges are checked against each other and the lab's.
//
// The stand-ins take exactly Tilt's parameter names, so a misspelled
// built-in or keyword fails here as it would in Tilt. Where Tilt would run
// a program while loading the Tiltfile, they run the real one: the
// settings come from `go run ./hack/kinddev settings`, and helm() renders
// the chart with the pinned helm (make bins), so the checks see what Tilt
// would deploy.
package tilt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/wirespan/wirespan/internal/testenv"
)

// blob is Tilt's Blob: text, as opposed to a string, which k8s_yaml and
// friends would read as a path.
type blob string

func (b blob) String() string        { return string(b) }
func (b blob) Type() string          { return "blob" }
func (b blob) Freeze()               {}
func (b blob) Truth() starlark.Bool  { return len(b) > 0 }
func (b blob) Hash() (uint32, error) { return starlark.String(b).Hash() }

// step is a live_update step: sync(local, remote) or run(cmd).
type step struct{ kind, a, b string }

func (s step) String() string        { return fmt.Sprintf("%s(%q, %q)", s.kind, s.a, s.b) }
func (s step) Type() string          { return "live_update_step" }
func (s step) Freeze()               {}
func (s step) Truth() starlark.Bool  { return true }
func (s step) Hash() (uint32, error) { return starlark.String(s.String()).Hash() }

// linkValue is what link() returns.
type linkValue struct{ url, name string }

func (l linkValue) String() string        { return fmt.Sprintf("link(%q, %q)", l.url, l.name) }
func (l linkValue) Type() string          { return "link" }
func (l linkValue) Freeze()               {}
func (l linkValue) Truth() starlark.Bool  { return true }
func (l linkValue) Hash() (uint32, error) { return starlark.String(l.url).Hash() }

type localResource struct {
	name, cmd, serveCmd                string
	deps, resourceDeps, labels, ignore []string
	autoInit                           bool
	links                              []linkValue
}

type dockerBuild struct {
	ref, context, dockerfile string
	buildArgs                map[string]string
	only                     []string
	liveUpdate               []step
}

type helmCall struct {
	path, name, namespace string
	values, set           []string
	rendered              string
}

type k8sResource struct {
	workload, newName             string
	objects, resourceDeps, labels []string
}

// recorder is the stand-in Tilt: what the Tiltfile asked for.
type recorder struct {
	// Inputs: the checkout, the environment the Tiltfile sees, Tilt's kube
	// context, and the helm to render with.
	root    string
	env     map[string]string
	context string
	helm    string

	versionConstraint string
	allowedContexts   []string
	defaultRegistry   string
	watched           []string
	read              []string
	settingsJSON      string
	localResources    []*localResource
	dockerBuilds      []*dockerBuild
	helmCalls         []*helmCall
	k8sYAML           []string
	k8sResources      []*k8sResource
}

// settingsCommand is the one program the Tiltfile may run while Tilt loads
// it: reading the settings. Anything else would run on every reload, and
// must be a resource instead.
var settingsCommand = regexp.MustCompile(`^go run \./hack/kinddev -settings (\S+) settings$`)

// run executes the Tiltfile src with the stand-ins.
func (r *recorder) run(t *testing.T, src []byte) error {
	t.Helper()
	b := starlark.NewBuiltin
	predeclared := starlark.StringDict{
		"version_settings":   b("version_settings", r.versionSettings),
		"local":              b("local", r.local),
		"decode_json":        b("decode_json", r.decodeJSON),
		"decode_yaml_stream": b("decode_yaml_stream", r.decodeYAMLStream),
		"encode_yaml_stream": b("encode_yaml_stream", encodeYAMLStream),
		"read_yaml":          b("read_yaml", r.readYAML),
		"watch_file":         b("watch_file", r.watchFile),
		"allow_k8s_contexts": b("allow_k8s_contexts", r.allowK8sContexts),
		"k8s_context":        b("k8s_context", r.k8sContext),
		"default_registry":   b("default_registry", r.defaultRegistryFn),
		"fail":               b("fail", fail),
		"local_resource":     b("local_resource", r.localResource),
		"docker_build":       b("docker_build", r.dockerBuild),
		"sync":               b("sync", syncStep),
		"run":                b("run", runStep),
		"helm":               b("helm", r.helmFn),
		"k8s_yaml":           b("k8s_yaml", r.k8sYAMLFn),
		"k8s_resource":       b("k8s_resource", r.k8sResource),
		"link":               b("link", link),
		"os": &starlarkstruct.Module{Name: "os", Members: starlark.StringDict{
			"getenv": b("os.getenv", r.getenv),
		}},
		"shlex": &starlarkstruct.Module{Name: "shlex", Members: starlark.StringDict{
			"quote": b("shlex.quote", shlexQuote),
		}},
	}
	thread := &starlark.Thread{
		Name:  "Tiltfile",
		Print: func(_ *starlark.Thread, msg string) { t.Log("Tiltfile:", msg) },
		Load: func(_ *starlark.Thread, module string) (starlark.StringDict, error) {
			return nil, fmt.Errorf("load(%q): no stand-in for it in test/tilt; add one that records its calls", module)
		},
	}
	// Tilt's dialect allows if and for at the top level; the Tiltfile
	// keeps its logic in functions and needs nothing more.
	_, err := starlark.ExecFileOptions(&syntax.FileOptions{TopLevelControl: true}, thread, filepath.Join(r.root, "Tiltfile"), src, predeclared)
	var evalErr *starlark.EvalError
	if errors.As(err, &evalErr) {
		return fmt.Errorf("%s", evalErr.Backtrace())
	}
	return err
}

// Helpers for arguments.

func str(v starlark.Value) (string, error) {
	switch v := v.(type) {
	case starlark.String:
		return string(v), nil
	case blob:
		return string(v), nil
	}
	return "", fmt.Errorf("want a string, got %s", v.Type())
}

// strs takes a string or a sequence of strings, as Tilt's path and list
// parameters do; nil is an empty list.
func strs(v starlark.Value) ([]string, error) {
	if v == nil || v == starlark.None {
		return nil, nil
	}
	if s, err := str(v); err == nil {
		return []string{s}, nil
	}
	seq, ok := v.(starlark.Iterable)
	if !ok {
		return nil, fmt.Errorf("want a string or a list of strings, got %s", v.Type())
	}
	var out []string
	it := seq.Iterate()
	defer it.Done()
	var x starlark.Value
	for it.Next(&x) {
		s, err := str(x)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// toStarlark converts decoded JSON or YAML into Starlark values.
func toStarlark(v any) (starlark.Value, error) {
	switch v := v.(type) {
	case nil:
		return starlark.None, nil
	case bool:
		return starlark.Bool(v), nil
	case string:
		return starlark.String(v), nil
	case float64:
		if v == float64(int64(v)) {
			return starlark.MakeInt64(int64(v)), nil
		}
		return starlark.Float(v), nil
	case int64:
		return starlark.MakeInt64(v), nil
	case []any:
		var items []starlark.Value
		for _, x := range v {
			sv, err := toStarlark(x)
			if err != nil {
				return nil, err
			}
			items = append(items, sv)
		}
		return starlark.NewList(items), nil
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		d := starlark.NewDict(len(v))
		for _, k := range keys {
			sv, err := toStarlark(v[k])
			if err != nil {
				return nil, err
			}
			if err := d.SetKey(starlark.String(k), sv); err != nil {
				return nil, err
			}
		}
		return d, nil
	}
	return nil, fmt.Errorf("cannot convert %T", v)
}

// The stand-ins. Each takes the parameters Tilt's own takes (by name),
// records what matters and returns what Tilt would.

func (r *recorder) versionSettings(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var checkUpdates bool
	var constraint string
	if err := starlark.UnpackArgs(b.Name(), args, kw, "check_updates?", &checkUpdates, "constraint?", &constraint); err != nil {
		return nil, err
	}
	r.versionConstraint = constraint
	return starlark.None, nil
}

func (r *recorder) local(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var (
		command, commandBat, dir string
		quiet, echoOff           bool
		env, stdin               starlark.Value
	)
	if err := starlark.UnpackArgs(b.Name(), args, kw, "command", &command, "quiet?", &quiet,
		"command_bat?", &commandBat, "echo_off?", &echoOff, "env?", &env, "dir?", &dir, "stdin?", &stdin); err != nil {
		return nil, err
	}
	if !settingsCommand.MatchString(command) {
		return nil, fmt.Errorf("local(%q): the Tiltfile runs only `kinddev settings` while loading; anything else belongs in a local_resource", command)
	}
	cmd := exec.Command("sh", "-c", command)
	cmd.Dir = r.root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("local(%q): %w: %s", command, err, stderr.String())
	}
	r.settingsJSON = string(out)
	return blob(out), nil
}

func (r *recorder) decodeJSON(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var v starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kw, "json", &v); err != nil {
		return nil, err
	}
	text, err := str(v)
	if err != nil {
		return nil, fmt.Errorf("decode_json: %w", err)
	}
	var out any
	if err := yaml.Unmarshal([]byte(text), &out); err != nil {
		return nil, fmt.Errorf("decode_json: %w", err)
	}
	return toStarlark(out)
}

// decodeYAML splits a YAML stream into documents, dropping empty ones as
// Tilt does.
func decodeYAML(text string) ([]any, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(text), 4096)
	var docs []any
	for {
		var doc any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
}

func (r *recorder) decodeYAMLStream(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var v starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kw, "yaml", &v); err != nil {
		return nil, err
	}
	text, err := str(v)
	if err != nil {
		return nil, fmt.Errorf("decode_yaml_stream: %w", err)
	}
	docs, err := decodeYAML(text)
	if err != nil {
		return nil, fmt.Errorf("decode_yaml_stream: %w", err)
	}
	return toStarlark(docs)
}

// fromStarlark converts Starlark data (dicts, lists, strings, numbers,
// booleans, None) back into Go values.
func fromStarlark(v starlark.Value) (any, error) {
	switch v := v.(type) {
	case starlark.NoneType:
		return nil, nil
	case starlark.Bool:
		return bool(v), nil
	case starlark.String:
		return string(v), nil
	case starlark.Int:
		i, ok := v.Int64()
		if !ok {
			return nil, fmt.Errorf("integer %s too large", v)
		}
		return i, nil
	case starlark.Float:
		return float64(v), nil
	case *starlark.List:
		out := []any{}
		for i := range v.Len() {
			x, err := fromStarlark(v.Index(i))
			if err != nil {
				return nil, err
			}
			out = append(out, x)
		}
		return out, nil
	case *starlark.Dict:
		out := map[string]any{}
		for _, kv := range v.Items() {
			k, ok := kv[0].(starlark.String)
			if !ok {
				return nil, fmt.Errorf("dict key %s is not a string", kv[0])
			}
			x, err := fromStarlark(kv[1])
			if err != nil {
				return nil, err
			}
			out[string(k)] = x
		}
		return out, nil
	}
	return nil, fmt.Errorf("cannot encode a %s as YAML", v.Type())
}

func encodeYAMLStream(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var objs *starlark.List
	if err := starlark.UnpackArgs(b.Name(), args, kw, "objs", &objs); err != nil {
		return nil, err
	}
	var docs []string
	for i := range objs.Len() {
		v, err := fromStarlark(objs.Index(i))
		if err != nil {
			return nil, fmt.Errorf("encode_yaml_stream: %w", err)
		}
		y, err := yaml.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("encode_yaml_stream: %w", err)
		}
		docs = append(docs, string(y))
	}
	return blob(strings.Join(docs, "---\n")), nil
}

func (r *recorder) readYAML(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var path string
	var def starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kw, "paths", &path, "default?", &def); err != nil {
		return nil, err
	}
	r.read = append(r.read, path)
	raw, err := os.ReadFile(filepath.Join(r.root, path))
	if err != nil {
		if def != nil && errors.Is(err, os.ErrNotExist) {
			return def, nil
		}
		return nil, fmt.Errorf("read_yaml: %w", err)
	}
	var out any
	if err := yaml.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("read_yaml %s: %w", path, err)
	}
	return toStarlark(out)
}

func (r *recorder) watchFile(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var path string
	if err := starlark.UnpackArgs(b.Name(), args, kw, "paths", &path); err != nil {
		return nil, err
	}
	r.watched = append(r.watched, path)
	return starlark.None, nil
}

func (r *recorder) allowK8sContexts(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var v starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kw, "contexts", &v); err != nil {
		return nil, err
	}
	ctxs, err := strs(v)
	if err != nil {
		return nil, fmt.Errorf("allow_k8s_contexts: %w", err)
	}
	r.allowedContexts = append(r.allowedContexts, ctxs...)
	return starlark.None, nil
}

func (r *recorder) k8sContext(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(b.Name(), args, kw); err != nil {
		return nil, err
	}
	return starlark.String(r.context), nil
}

func (r *recorder) defaultRegistryFn(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var host, fromCluster string
	var singleName starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kw, "host", &host, "host_from_cluster?", &fromCluster, "single_name?", &singleName); err != nil {
		return nil, err
	}
	r.defaultRegistry = host
	return starlark.None, nil
}

func fail(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var msg string
	if err := starlark.UnpackArgs(b.Name(), args, kw, "msg", &msg); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("fail: %s", msg)
}

func (r *recorder) localResource(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var (
		lr                                                               localResource
		cmd, serveCmd, deps, resourceDeps, ignore, links, labels         starlark.Value
		triggerMode, cmdBat, serveCmdBat, tags, env, serveEnv, readiness starlark.Value
		dir, serveDir                                                    starlark.Value
		allowParallel                                                    bool
	)
	lr.autoInit = true
	if err := starlark.UnpackArgs(b.Name(), args, kw,
		"name", &lr.name, "cmd?", &cmd, "deps?", &deps, "trigger_mode?", &triggerMode,
		"resource_deps?", &resourceDeps, "ignore?", &ignore, "auto_init?", &lr.autoInit,
		"serve_cmd?", &serveCmd, "cmd_bat?", &cmdBat, "serve_cmd_bat?", &serveCmdBat,
		"allow_parallel?", &allowParallel, "links?", &links, "labels?", &labels, "tags?", &tags,
		"env?", &env, "serve_env?", &serveEnv, "readiness_probe?", &readiness,
		"dir?", &dir, "serve_dir?", &serveDir); err != nil {
		return nil, err
	}
	var err error
	if cmd != nil {
		if lr.cmd, err = str(cmd); err != nil {
			return nil, fmt.Errorf("local_resource %s: cmd: %w", lr.name, err)
		}
	}
	if serveCmd != nil {
		if lr.serveCmd, err = str(serveCmd); err != nil {
			return nil, fmt.Errorf("local_resource %s: serve_cmd: %w", lr.name, err)
		}
	}
	if lr.cmd == "" && lr.serveCmd == "" {
		return nil, fmt.Errorf("local_resource %s must have a cmd and/or a serve_cmd", lr.name)
	}
	for _, f := range []struct {
		v   starlark.Value
		dst *[]string
	}{{deps, &lr.deps}, {resourceDeps, &lr.resourceDeps}, {ignore, &lr.ignore}, {labels, &lr.labels}} {
		if *f.dst, err = strs(f.v); err != nil {
			return nil, fmt.Errorf("local_resource %s: %w", lr.name, err)
		}
	}
	if lr.links, err = linkList(links); err != nil {
		return nil, fmt.Errorf("local_resource %s: %w", lr.name, err)
	}
	for _, other := range r.localResources {
		if other.name == lr.name {
			return nil, fmt.Errorf("local resource %s has been defined multiple times", lr.name)
		}
	}
	r.localResources = append(r.localResources, &lr)
	return starlark.None, nil
}

func linkList(v starlark.Value) ([]linkValue, error) {
	if v == nil {
		return nil, nil
	}
	list, ok := v.(*starlark.List)
	if !ok {
		return nil, fmt.Errorf("links: want a list, got %s", v.Type())
	}
	var out []linkValue
	for i := range list.Len() {
		l, ok := list.Index(i).(linkValue)
		if !ok {
			return nil, fmt.Errorf("links[%d]: want link(...), got %s", i, list.Index(i).Type())
		}
		out = append(out, l)
	}
	return out, nil
}

func (r *recorder) dockerBuild(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var (
		db                                                                 dockerBuild
		buildArgs, dockerfile, contents, cache, live, ignore, only         starlark.Value
		entrypoint, containerArgs, target, ssh, secret, network, extraTags starlark.Value
		cacheFrom, platform                                                starlark.Value
		matchInEnv, pull                                                   bool
	)
	if err := starlark.UnpackArgs(b.Name(), args, kw,
		"ref", &db.ref, "context", &db.context, "build_args?", &buildArgs, "dockerfile?", &dockerfile,
		"dockerfile_contents?", &contents, "cache?", &cache, "live_update?", &live,
		"match_in_env_vars?", &matchInEnv, "ignore?", &ignore, "only?", &only,
		"entrypoint?", &entrypoint, "container_args?", &containerArgs, "target?", &target,
		"ssh?", &ssh, "secret?", &secret, "network?", &network, "extra_tag?", &extraTags,
		"cache_from?", &cacheFrom, "pull?", &pull, "platform?", &platform); err != nil {
		return nil, err
	}
	var err error
	db.dockerfile = filepath.Join(db.context, "Dockerfile")
	if dockerfile != nil {
		if db.dockerfile, err = str(dockerfile); err != nil {
			return nil, fmt.Errorf("docker_build %s: dockerfile: %w", db.ref, err)
		}
	}
	if db.only, err = strs(only); err != nil {
		return nil, fmt.Errorf("docker_build %s: only: %w", db.ref, err)
	}
	db.buildArgs = map[string]string{}
	if buildArgs != nil {
		d, ok := buildArgs.(*starlark.Dict)
		if !ok {
			return nil, fmt.Errorf("docker_build %s: build_args: want a dict", db.ref)
		}
		for _, kv := range d.Items() {
			k, err1 := str(kv[0])
			v, err2 := str(kv[1])
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("docker_build %s: build_args: want strings", db.ref)
			}
			db.buildArgs[k] = v
		}
	}
	if live != nil {
		list, ok := live.(*starlark.List)
		if !ok {
			return nil, fmt.Errorf("docker_build %s: live_update: want a list", db.ref)
		}
		for i := range list.Len() {
			s, ok := list.Index(i).(step)
			if !ok {
				return nil, fmt.Errorf("docker_build %s: live_update[%d]: want sync() or run(), got %s", db.ref, i, list.Index(i).Type())
			}
			db.liveUpdate = append(db.liveUpdate, s)
		}
	}
	r.dockerBuilds = append(r.dockerBuilds, &db)
	return starlark.None, nil
}

func syncStep(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var local, remote string
	if err := starlark.UnpackArgs(b.Name(), args, kw, "local_path", &local, "remote_path", &remote); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(remote, "/") {
		return nil, fmt.Errorf("sync: remote path %q must be absolute", remote)
	}
	return step{"sync", local, remote}, nil
}

func runStep(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var cmd string
	var trigger starlark.Value
	var echoOff bool
	if err := starlark.UnpackArgs(b.Name(), args, kw, "cmd", &cmd, "trigger?", &trigger, "echo_off?", &echoOff); err != nil {
		return nil, err
	}
	return step{"run", cmd, ""}, nil
}

// helmFn renders the chart the way Tilt's helm() does: `helm template
// NAME PATH --include-crds --namespace NS --values ... --set ...`, then
// gives every object without a namespace the namespace, as Tilt does.
func (r *recorder) helmFn(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var (
		h                  helmCall
		values, set        starlark.Value
		kubeVersion        string
		skipCRDs           bool
		err                error
		stderr             bytes.Buffer
		renderedWithNSDocs []string
	)
	if err := starlark.UnpackArgs(b.Name(), args, kw, "paths", &h.path, "name?", &h.name, "namespace?", &h.namespace,
		"values?", &values, "set?", &set, "kube_version?", &kubeVersion, "skip_crds?", &skipCRDs); err != nil {
		return nil, err
	}
	if h.values, err = strs(values); err != nil {
		return nil, fmt.Errorf("helm: values: %w", err)
	}
	if h.set, err = strs(set); err != nil {
		return nil, fmt.Errorf("helm: set: %w", err)
	}
	name := h.name
	if name == "" {
		name = "chart"
	}
	argv := []string{"template", name, h.path}
	if !skipCRDs {
		argv = append(argv, "--include-crds")
	}
	if h.namespace != "" {
		argv = append(argv, "--namespace", h.namespace)
	}
	for _, v := range h.values {
		argv = append(argv, "--values", v)
	}
	for _, s := range h.set {
		argv = append(argv, "--set", s)
	}
	cmd := exec.Command(r.helm, argv...)
	cmd.Dir = r.root
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("helm %s: %w: %s", strings.Join(argv, " "), err, stderr.String())
	}
	docs, err := decodeYAML(string(out))
	if err != nil {
		return nil, fmt.Errorf("helm output: %w", err)
	}
	for _, d := range docs {
		obj, ok := d.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("helm output: a document is not an object: %v", d)
		}
		if meta, ok := obj["metadata"].(map[string]any); ok && h.namespace != "" && meta["namespace"] == nil {
			meta["namespace"] = h.namespace
		}
		y, err := yaml.Marshal(obj)
		if err != nil {
			return nil, err
		}
		renderedWithNSDocs = append(renderedWithNSDocs, string(y))
	}
	h.rendered = strings.Join(renderedWithNSDocs, "---\n")
	r.helmCalls = append(r.helmCalls, &h)
	return blob(h.rendered), nil
}

func (r *recorder) k8sYAMLFn(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var v starlark.Value
	var allowDuplicates bool
	if err := starlark.UnpackArgs(b.Name(), args, kw, "yaml", &v, "allow_duplicates?", &allowDuplicates); err != nil {
		return nil, err
	}
	text, ok := v.(blob)
	if !ok {
		return nil, fmt.Errorf("k8s_yaml: the Tiltfile passes rendered YAML (a blob), got %s", v.Type())
	}
	if strings.TrimSpace(string(text)) == "" {
		return nil, errors.New("k8s_yaml: empty or invalid YAML")
	}
	r.k8sYAML = append(r.k8sYAML, string(text))
	return starlark.None, nil
}

func (r *recorder) k8sResource(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var (
		kr                                                            k8sResource
		portForwards, extraSelectors, triggerMode, deps, objects, lbl starlark.Value
		readiness, links, discovery                                   starlark.Value
		autoInit                                                      = true
		err                                                           error
	)
	if err := starlark.UnpackArgs(b.Name(), args, kw, "workload?", &kr.workload, "new_name?", &kr.newName,
		"port_forwards?", &portForwards, "extra_pod_selectors?", &extraSelectors, "trigger_mode?", &triggerMode,
		"resource_deps?", &deps, "objects?", &objects, "auto_init?", &autoInit, "pod_readiness?", &readiness,
		"links?", &links, "labels?", &lbl, "discovery_strategy?", &discovery); err != nil {
		return nil, err
	}
	if kr.resourceDeps, err = strs(deps); err != nil {
		return nil, fmt.Errorf("k8s_resource: resource_deps: %w", err)
	}
	if kr.objects, err = strs(objects); err != nil {
		return nil, fmt.Errorf("k8s_resource: objects: %w", err)
	}
	if kr.labels, err = strs(lbl); err != nil {
		return nil, fmt.Errorf("k8s_resource: labels: %w", err)
	}
	if kr.workload == "" && (len(kr.objects) == 0 || kr.newName == "") {
		return nil, errors.New("k8s_resource without a workload needs objects and a new_name")
	}
	r.k8sResources = append(r.k8sResources, &kr)
	return starlark.None, nil
}

func link(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var l linkValue
	if err := starlark.UnpackArgs(b.Name(), args, kw, "url", &l.url, "name?", &l.name); err != nil {
		return nil, err
	}
	return l, nil
}

func (r *recorder) getenv(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var key string
	var def starlark.Value = starlark.None
	if err := starlark.UnpackArgs(b.Name(), args, kw, "key", &key, "default?", &def); err != nil {
		return nil, err
	}
	if v, ok := r.env[key]; ok {
		return starlark.String(v), nil
	}
	return def, nil
}

// shlexQuote quotes like Python's shlex.quote, which Tilt's is.
func shlexQuote(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var s string
	if err := starlark.UnpackArgs(b.Name(), args, kw, "s", &s); err != nil {
		return nil, err
	}
	if s == "" {
		return starlark.String("''"), nil
	}
	if regexp.MustCompile(`^[\w@%+=:,./-]+$`).MatchString(s) {
		return starlark.String(s), nil
	}
	return starlark.String("'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"), nil
}

// newRecorder is a stand-in Tilt for the checkout, with the pinned helm.
func newRecorder(t *testing.T, kubeContext string, env map[string]string) *recorder {
	t.Helper()
	if testing.Short() {
		t.Skip("renders the chart with the helm of `make bins`: not with -short")
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	helm := filepath.Join(root, ".cache", "bins", "assets", "helm")
	if _, err := os.Stat(helm); err != nil {
		t.Fatalf("helm not built: run `make bins` (%v)", err)
	}
	return &recorder{root: root, env: env, context: kubeContext, helm: helm}
}
