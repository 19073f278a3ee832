// Package services is the gateway's Multi-Cluster Services controller
// (KEP-1645). It runs on the active gateway, where the exports of the
// other clusters arrive by gossip, and does both halves:
//
//   - export: for every ServiceExport it computes the record of the
//     Service (mcs.FromService), hands the whole set to gossip, and writes
//     the Valid, Ready and Conflict conditions;
//   - import: it merges every cluster's export of each Service (mcs.Merge)
//     and writes, in every namespace that exists here, the ServiceImport,
//     the derived Service that holds its clusterset IP, and one set of
//     EndpointSlices per exporting cluster; and it feeds the DNS server.
//
// Every sync recomputes everything from the informer caches and gossip
// (level-triggered); only differences are written.
package services
