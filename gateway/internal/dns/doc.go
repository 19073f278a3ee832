// Package dns serves the clusterset.local zone of the Multi-Cluster Services
// API (KEP-1645): the names of the services this cluster imports, as its
// DNS specification (schema version 1.0.0) defines them.
//
// The gateway's MCS controller keeps a Store up to date with the imported
// services; a Server answers queries from it over UDP and TCP. The package
// has three layers, each testable on its own:
//
//	Store (store.go, entry.go)  Service values → immutable per-service entries,
//	                            published as one snapshot (copy on write)
//	answerer (answer.go)        query *dns.Msg + snapshot → response *dns.Msg:
//	                            pure, no sockets, no clock
//	Server (server.go)          UDP and TCP listeners (miekg/dns), metrics
//
// # Names
//
// Under the zone Z (default clusterset.local.):
//
//	<svc>.<ns>.svc.Z                       A/AAAA: the ClusterSetIPs, or the
//	                                       addresses of every ready endpoint
//	                                       of a headless service
//	<host>.<clusterid>.<svc>.<ns>.svc.Z    A/AAAA of one headless endpoint
//	_<port>._<proto>.<svc>.<ns>.svc.Z      SRV for each named port
//	dns-version.Z                          TXT "1.0.0"
//	Z                                      SOA
//
// A name that holds no record but has names below it (Z, svc.Z, <ns>.svc.Z,
// <clusterid>.<svc>.<ns>.svc.Z, _tcp.<svc>.<ns>.svc.Z) exists: asking it
// for any type is NODATA, never NXDOMAIN, because NXDOMAIN would deny the
// names below it too (RFC 8020).
//
// Queries never wait for updates: a query reads the snapshot that is
// current when it starts, and an update builds the new snapshot before it
// swaps it in. docs/dns.md is the user-facing description.
package dns
