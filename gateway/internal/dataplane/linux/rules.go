package linux

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/wirespan/wirespan/gateway/internal/dataplane"
)

// Rules lists the IPv4 and IPv6 policy rules that carry
// dataplane.RouteProtocol.
func (k *Kernel) Rules() ([]dataplane.Rule, error) {
	if err := k.lock(); err != nil {
		return nil, err
	}
	defer k.mu.Unlock()
	var out []dataplane.Rule
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		nrs, err := dump(func() ([]netlink.Rule, error) { return k.nl.RuleList(family) })
		if err != nil {
			return nil, fmt.Errorf("list rules: %w", err)
		}
		for _, nr := range nrs {
			if nr.Protocol != dataplane.RouteProtocol {
				continue
			}
			r := dataplane.Rule{IPv6: family == netlink.FAMILY_V6, Priority: nr.Priority, Table: nr.Table}
			if nr.Invert {
				r.SkipMark = nr.Mark
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// AddRule adds a rule "priority P [not fwmark M] lookup T proto 201" of
// r's family; a rule that is there already is not an error.
func (k *Kernel) AddRule(r dataplane.Rule) error {
	if err := k.lock(); err != nil {
		return err
	}
	defer k.mu.Unlock()
	err := k.nl.RuleAdd(netlinkRule(r))
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add rule %s: %w", r, err)
	}
	return nil
}

// DeleteRule deletes Wirespan's rule r; a rule that is not there is
// not an error. The kernel matches the protocol, so a rule of another owner
// with the same priority and table is never deleted.
func (k *Kernel) DeleteRule(r dataplane.Rule) error {
	if err := k.lock(); err != nil {
		return err
	}
	defer k.mu.Unlock()
	err := k.nl.RuleDel(netlinkRule(r))
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete rule %s: %w", r, err)
	}
	return nil
}

func netlinkRule(r dataplane.Rule) *netlink.Rule {
	nr := netlink.NewRule()
	nr.Family = netlink.FAMILY_V4
	if r.IPv6 {
		nr.Family = netlink.FAMILY_V6
	}
	nr.Priority = r.Priority
	nr.Table = r.Table
	nr.Protocol = dataplane.RouteProtocol
	if r.SkipMark != 0 {
		mask := ^uint32(0)
		nr.Mark, nr.Mask, nr.Invert = r.SkipMark, &mask, true
	}
	return nr
}
