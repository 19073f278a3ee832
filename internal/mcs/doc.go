// Package mcs is the pure logic of Multi-Cluster Services (KEP-1645): what a
// cluster tells the others about a Service it exports (Export), how the
// exports of one Service from several clusters merge into one import and
// which of them conflict (Merge), and the shape of the objects an importing
// cluster creates (ServiceImport, derived Service, EndpointSlices).
//
// Nothing here talks to the API server or the network; the gateway's MCS
// controller feeds it what its informers and gossip hold and writes back
// what it returns.
package mcs
