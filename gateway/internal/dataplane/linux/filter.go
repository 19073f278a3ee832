package linux

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

const (
	// FilterTable is the nftables table Wirespan owns ("table inet
	// wirespan"). Nothing outside it is read or changed.
	FilterTable = "wirespan"
	// clampChain is the base chain that clamps MSS on forwarded SYNs.
	clampChain = "mss-clamp"
	// clampComment starts the comment (nftables rule user data) of every
	// clamp rule; the direction and the interface follow.
	clampComment = "mss-clamp"
)

// clampDirections are the two rules per interface: SYNs leaving by it and
// SYNs entering by it.
var clampDirections = []struct {
	name string
	key  expr.MetaKey
}{
	{"oifname", expr.MetaKeyOIFNAME},
	{"iifname", expr.MetaKeyIIFNAME},
}

// MSSClamp returns the interfaces that have both clamp rules in Wirespan's
// table, sorted.
func (k *Kernel) MSSClamp() ([]string, error) {
	rules, err := k.chainRules(clampChain)
	if err != nil {
		return nil, err
	}
	dirs := map[string]map[string]bool{} // iface -> directions
	for _, r := range rules {
		comment, _ := userdata.GetString(r.UserData, userdata.TypeComment)
		f := strings.Fields(comment)
		if len(f) != 3 || f[0] != clampComment {
			continue
		}
		if dirs[f[2]] == nil {
			dirs[f[2]] = map[string]bool{}
		}
		dirs[f[2]][f[1]] = true
	}
	var out []string
	for iface, d := range dirs {
		// An interface missing one of its rules reads as unclamped, so that
		// the next SetMSSClamp repairs it.
		if len(d) == len(clampDirections) {
			out = append(out, iface)
		}
	}
	slices.Sort(out)
	return out, nil
}

// SetMSSClamp replaces, in one transaction, the forward-hook chain of
// Wirespan's table that clamps the MSS of TCP SYNs entering or leaving by
// each of ifaces to the route's MTU:
//
//	oifname "wg0" tcp flags syn / syn,rst tcp option maxseg size set rt mtu
//
// An empty list deletes the chain, and the table if nothing else is left
// in it (replaceChain).
func (k *Kernel) SetMSSClamp(ifaces []string) error {
	if err := k.lock(); err != nil {
		return err
	}
	defer k.mu.Unlock()
	ifaces = slices.Compact(slices.Sorted(slices.Values(ifaces)))
	for _, iface := range ifaces {
		if iface == "" || len(iface) >= unix.IFNAMSIZ || strings.ContainsAny(iface, " \t\n") {
			return fmt.Errorf("set mss clamp: bad interface name %q", iface)
		}
	}
	c, err := k.nft()
	if err != nil {
		return fmt.Errorf("set mss clamp on %v: %w", ifaces, err)
	}
	table := &nftables.Table{Family: nftables.TableFamilyINet, Name: FilterTable}
	accept := nftables.ChainPolicyAccept
	chain := &nftables.Chain{
		Name:     clampChain,
		Table:    table,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookForward,
		Priority: nftables.ChainPriorityMangle,
		Policy:   &accept,
	}
	var rules []*nftables.Rule
	for _, iface := range ifaces {
		for _, dir := range clampDirections {
			rules = append(rules, &nftables.Rule{
				Table:    table,
				Chain:    chain,
				Exprs:    clampExprs(dir.key, iface),
				UserData: userdata.AppendString(nil, userdata.TypeComment, clampComment+" "+dir.name+" "+iface),
			})
		}
	}
	if err := replaceChain(c, chain, rules); err != nil {
		return fmt.Errorf("set mss clamp on %v in table inet %s: %w", ifaces, FilterTable, err)
	}
	return nil
}

// clampExprs are the expressions nft makes of
//
//	<dir> "<iface>" tcp flags syn / syn,rst tcp option maxseg size set rt mtu
func clampExprs(dir expr.MetaKey, iface string) []expr.Any {
	const (
		tcpFlagsOffset = 13 // in the TCP header
		syn, rst       = 0x02, 0x04
		optMaxseg      = 2 // TCP option kind
	)
	name := make([]byte, unix.IFNAMSIZ)
	copy(name, iface)
	return []expr.Any{
		&expr.Meta{Key: dir, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: name},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: tcpFlagsOffset, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{syn | rst}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{syn}},
		// rt mtu: the MSS the route's MTU allows, in host byte order.
		&expr.Rt{Register: 1, Key: expr.RtTCPMSS},
		&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 2, Size: 2},
		// tcp option maxseg size set: the kernel only ever lowers it.
		&expr.Exthdr{SourceRegister: 1, Type: optMaxseg, Offset: 2, Len: 2, Op: expr.ExthdrOpTcpopt},
	}
}

// chainRules lists the rules of one chain of Wirespan's table; none if
// the table or the chain is missing.
func (k *Kernel) chainRules(chain string) ([]*nftables.Rule, error) {
	if err := k.lock(); err != nil {
		return nil, err
	}
	defer k.mu.Unlock()
	c, err := k.nft()
	if err != nil {
		return nil, fmt.Errorf("list the rules of chain %s: %w", chain, err)
	}
	table := &nftables.Table{Family: nftables.TableFamilyINet, Name: FilterTable}
	rules, err := c.GetRules(table, &nftables.Chain{Name: chain, Table: table})
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list the rules of chain %s in table inet %s: %w", chain, FilterTable, err)
	}
	return rules, nil
}

// nft opens an nftables connection in the Kernel's namespace.
func (k *Kernel) nft() (*nftables.Conn, error) {
	if k.ns.current() {
		return nftables.New()
	}
	return nftables.New(nftables.WithNetNSFd(int(k.ns.handle)))
}
