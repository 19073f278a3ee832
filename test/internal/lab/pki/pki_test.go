package pki

import (
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
)

func TestServingCertificateVerifiesForTheAPIServerNames(t *testing.T) {
	f, err := Write(t.TempDir(), Request{
		Cluster:     "c1",
		ServerIPs:   []net.IP{net.ParseIP("100.127.0.1")},
		ServerNames: []string{"kubernetes.default.svc"},
		Server:      "https://100.127.0.1:6443",
	})
	if err != nil {
		t.Fatal(err)
	}
	read := func(path string) *x509.Certificate {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(raw)
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	roots := x509.NewCertPool()
	roots.AddCert(read(f.CACert))
	server := read(f.ServerCert)
	for _, name := range []string{"100.127.0.1", "kubernetes.default.svc"} {
		if _, err := server.Verify(x509.VerifyOptions{DNSName: name, Roots: roots}); err != nil {
			t.Errorf("serving certificate for %s: %v", name, err)
		}
	}
	if _, err := server.Verify(x509.VerifyOptions{DNSName: "evil.example", Roots: roots}); err == nil {
		t.Error("serving certificate verifies for a name it was not issued for")
	}
	kc, err := clientcmd.LoadFromFile(f.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if kc.CurrentContext != "c1" || kc.Clusters["c1"].Server != "https://100.127.0.1:6443" {
		t.Errorf("kubeconfig %+v", kc)
	}
	block, _ := pem.Decode(kc.AuthInfos["lab-admin"].ClientCertificateData)
	admin, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil || admin.Subject.Organization[0] != "system:masters" {
		t.Errorf("admin certificate %v: %v", admin.Subject, err)
	}
}
