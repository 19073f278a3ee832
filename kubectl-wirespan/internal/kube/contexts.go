package kube

import (
	"errors"
	"fmt"
	"slices"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Selection is what the kubeconfig flags say: which file and which
// contexts.
type Selection struct {
	// Kubeconfig is a kubeconfig path; empty uses $KUBECONFIG or
	// ~/.kube/config, as kubectl does.
	Kubeconfig string
	// Context is one context (--context); empty is the current one.
	Context string
	// Contexts are several (--contexts a,b,c).
	Contexts []string
	// AllContexts takes every context of the kubeconfig.
	AllContexts bool
}

// Target is one context to read, with its client configuration.
type Target struct {
	Context string
	Config  *rest.Config
}

func (s Selection) rules() *clientcmd.ClientConfigLoadingRules {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = s.Kubeconfig
	return rules
}

// RawConfig loads the merged kubeconfig.
func (s Selection) RawConfig() (clientcmdapi.Config, error) {
	raw, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(s.rules(), &clientcmd.ConfigOverrides{}).RawConfig()
	if err != nil {
		return clientcmdapi.Config{}, fmt.Errorf("load kubeconfig: %w", err)
	}
	return raw, nil
}

// ContextNames lists the kubeconfig's contexts, sorted (for completion).
func (s Selection) ContextNames() ([]string, error) {
	raw, err := s.RawConfig()
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(raw.Contexts))
	for n := range raw.Contexts {
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}

// Targets resolves the selection to contexts and their configurations, in
// the order given (--all-contexts: sorted by name).
func (s Selection) Targets() ([]Target, error) {
	names, err := s.contexts()
	if err != nil {
		return nil, err
	}
	out := make([]Target, 0, len(names))
	for _, name := range names {
		cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(s.rules(),
			&clientcmd.ConfigOverrides{CurrentContext: name}).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("context %q: %w", name, err)
		}
		// The commands read a handful of lists per cluster; kubectl's own
		// limits are fine, but a hung API server must not hang a runbook.
		if cfg.Timeout == 0 {
			cfg.Timeout = defaultTimeout
		}
		cfg.UserAgent = "kubectl-wirespan"
		out = append(out, Target{Context: name, Config: cfg})
	}
	return out, nil
}

func (s Selection) contexts() ([]string, error) {
	given := 0
	for _, set := range []bool{s.Context != "", len(s.Contexts) > 0, s.AllContexts} {
		if set {
			given++
		}
	}
	if given > 1 {
		return nil, errors.New("give only one of --context, --contexts and --all-contexts")
	}
	raw, err := s.RawConfig()
	if err != nil {
		return nil, err
	}
	var names []string
	switch {
	case s.AllContexts:
		for n := range raw.Contexts {
			names = append(names, n)
		}
		slices.Sort(names)
	case len(s.Contexts) > 0:
		names = s.Contexts
	case s.Context != "":
		names = []string{s.Context}
	default:
		if raw.CurrentContext == "" {
			return nil, errors.New("the kubeconfig has no current context: give --context, --contexts or --all-contexts")
		}
		names = []string{raw.CurrentContext}
	}
	if len(names) == 0 {
		return nil, errors.New("the kubeconfig has no contexts")
	}
	seen := map[string]bool{}
	for _, n := range names {
		if _, ok := raw.Contexts[n]; !ok {
			return nil, fmt.Errorf("context %q is not in the kubeconfig", n)
		}
		if seen[n] {
			return nil, fmt.Errorf("context %q is given twice", n)
		}
		seen[n] = true
	}
	return names, nil
}
