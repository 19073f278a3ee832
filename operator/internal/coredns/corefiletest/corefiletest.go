// Package corefiletest holds Corefiles for the tests of the packages that
// edit them (coredns, and the operator's Corefile controller).
package corefiletest

// Kubeadm is the Corefile kubeadm installs (v1.28 and later).
const Kubeadm = `.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30 {
       disable success cluster.local
       disable denial cluster.local
    }
    loop
    reload
    loadbalance
}
`
