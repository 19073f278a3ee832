// Package status turns what was read from each cluster (model.Clusterset)
// into the report `kubectl wirespan status` prints: one row per peer as
// each cluster sees it, with its tunnel figures, routed and refused ranges,
// and the counts of Multi-Cluster Services objects. Build is pure; the
// writers format a Report as a table, a wide table, JSON or YAML.
//
// Refused ranges come from claims.Decide, called with the inputs the
// cluster's operator has (claims.FromPeers), so the CLI shows the same
// decision the operator wrote in the conditions, range by range. What only
// a gateway refuses (its node network, say) is in the Connected message.
package status
