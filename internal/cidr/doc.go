// Package cidr holds the pure address-range logic of the operator: parsing
// CIDR lists strictly, summarising the ranges a cluster holds without claiming
// space it does not hold, and finding ranges that overlap between peers.
// Which claims are accepted is package claims' decision. It does no I/O.
package cidr
