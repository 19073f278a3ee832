package linux

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"

	"github.com/wirespan/wirespan/gateway/internal/dataplane"
)

const (
	// gossipChain is the input-hook chain that closes the gossip port to
	// all but the peers' tunnel addresses.
	gossipChain = "gossip-input"
	// gossipComment starts the comment of every rule of gossipChain:
	// "gossip-input accept <peer> <proto>" or "gossip-input drop <addr>
	// <port> <proto>", from which GossipInput reads the rule back.
	gossipComment = "gossip-input"
)

var gossipProtos = []struct {
	name  string
	proto byte
}{{"tcp", unix.IPPROTO_TCP}, {"udp", unix.IPPROTO_UDP}}

// GossipInput reads the gossip input rule back from its chain's comments;
// nil if the chain is missing or holds no drop rule.
func (k *Kernel) GossipInput() (*dataplane.GossipInput, error) {
	rules, err := k.chainRules(gossipChain)
	if err != nil {
		return nil, err
	}
	var g dataplane.GossipInput
	drops, peers := 0, map[netip.Addr]int{}
	for _, r := range rules {
		comment, _ := userdata.GetString(r.UserData, userdata.TypeComment)
		f := strings.Fields(comment)
		switch {
		case len(f) == 4 && f[0] == gossipComment && f[1] == "accept":
			if a, err := netip.ParseAddr(f[2]); err == nil {
				peers[a]++
			}
		case len(f) == 5 && f[0] == gossipComment && f[1] == "drop":
			a, aerr := netip.ParseAddr(f[2])
			p, perr := strconv.ParseUint(f[3], 10, 16)
			if aerr == nil && perr == nil {
				g.Addr, g.Port = a, uint16(p)
				drops++
			}
		}
	}
	// A rule missing for one protocol reads as no rule, so that the next
	// SetGossipInput repairs it.
	if drops != len(gossipProtos) {
		return nil, nil
	}
	for a, n := range peers {
		if n == len(gossipProtos) {
			g.Peers = append(g.Peers, a)
		}
	}
	slices.SortFunc(g.Peers, netip.Addr.Compare)
	return &g, nil
}

// SetGossipInput replaces, in one transaction, the chain of the gossip
// input rule in Wirespan's table, by, for TCP and for UDP:
//
//	ip daddr <addr> meta l4proto tcp th dport <port> ip saddr <peer> accept   (each peer)
//	ip daddr <addr> meta l4proto tcp th dport <port> counter drop
//
// nil removes the chain, and the table if nothing else is left in it.
func (k *Kernel) SetGossipInput(g *dataplane.GossipInput) error {
	if g != nil && (!g.Addr.Is4() || slices.ContainsFunc(g.Peers, func(a netip.Addr) bool { return !a.Is4() })) {
		return fmt.Errorf("set gossip input %s: the tunnel is IPv4", g)
	}
	if err := k.lock(); err != nil {
		return err
	}
	defer k.mu.Unlock()
	c, err := k.nft()
	if err != nil {
		return fmt.Errorf("set gossip input %s: %w", g, err)
	}
	table := &nftables.Table{Family: nftables.TableFamilyINet, Name: FilterTable}
	accept := nftables.ChainPolicyAccept
	chain := &nftables.Chain{
		Name: gossipChain, Table: table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &accept,
	}
	var rules []*nftables.Rule
	if g != nil {
		rules = gossipRules(chain, g)
	}
	if err := replaceChain(c, chain, rules); err != nil {
		return fmt.Errorf("set gossip input %s in table inet %s: %w", g, FilterTable, err)
	}
	return nil
}

func gossipRules(chain *nftables.Chain, g *dataplane.GossipInput) []*nftables.Rule {
	var rules []*nftables.Rule
	rule := func(comment string, exprs ...expr.Any) {
		rules = append(rules, &nftables.Rule{
			Table: chain.Table, Chain: chain, Exprs: exprs,
			UserData: userdata.AppendString(nil, userdata.TypeComment, gossipComment+" "+comment),
		})
	}
	port := binary.BigEndian.AppendUint16(nil, g.Port)
	for _, p := range gossipProtos {
		match := []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4}, // ip daddr
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: g.Addr.AsSlice()},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p.proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}, // th dport
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port},
		}
		for _, peer := range g.Peers {
			rule(fmt.Sprintf("accept %s %s", peer, p.name), append(slices.Clone(match),
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}, // ip saddr
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: peer.AsSlice()},
				&expr.Verdict{Kind: expr.VerdictAccept})...)
		}
		rule(fmt.Sprintf("drop %s %d %s", g.Addr, g.Port, p.name), append(slices.Clone(match),
			&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop})...)
	}
	return rules
}

// replaceChain replaces chain and its rules in one transaction; with no
// rules it deletes the chain, and then the table if no chain of it is
// left. Chains of the table other than chain are not touched.
func replaceChain(c *nftables.Conn, chain *nftables.Chain, rules []*nftables.Rule) error {
	// Adding first makes the deletes succeed whether or not they were
	// there; all of it is one batch, applied atomically by Flush.
	c.AddTable(chain.Table)
	c.AddChain(chain)
	c.DelChain(chain)
	if len(rules) > 0 {
		c.AddChain(chain)
		for _, r := range rules {
			c.AddRule(r)
		}
	}
	if err := c.Flush(); err != nil {
		return err
	}
	if len(rules) > 0 {
		return nil
	}
	chains, err := c.ListChainsOfTableFamily(chain.Table.Family)
	if err != nil {
		return fmt.Errorf("list chains: %w", err)
	}
	if slices.ContainsFunc(chains, func(ch *nftables.Chain) bool { return ch.Table.Name == chain.Table.Name }) {
		return nil
	}
	c.DelTable(chain.Table)
	return c.Flush()
}
