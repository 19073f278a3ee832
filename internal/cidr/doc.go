// Package cidr holds the pure address-range logic of the operator: parsing
// CIDR lists strictly, summarising the ranges a cluster holds without claiming
// space it does not hold, and finding ranges that overlap between peers or
// fall outside a peer's allowed ranges. It does no I/O.
package cidr
