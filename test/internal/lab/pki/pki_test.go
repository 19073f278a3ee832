package pki

import (
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
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

func TestTokenKubeconfigKeepsTheClusterAndDropsTheCertificate(t *testing.T) {
	dir := t.TempDir()
	f, err := Write(dir, Request{Cluster: "c1", ServerIPs: []net.IP{net.ParseIP("100.127.0.1")}, Server: "https://100.127.0.1:6443"})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "sa.kubeconfig")
	if err := TokenKubeconfig(f.Kubeconfig, path, "wirespan-operator", "secret-token"); err != nil {
		t.Fatal(err)
	}
	kc, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	admin, _ := clientcmd.LoadFromFile(f.Kubeconfig)
	ctx := kc.Contexts[kc.CurrentContext]
	if ctx == nil || kc.Clusters[ctx.Cluster].Server != "https://100.127.0.1:6443" ||
		string(kc.Clusters[ctx.Cluster].CertificateAuthorityData) != string(admin.Clusters["c1"].CertificateAuthorityData) {
		t.Fatalf("cluster not kept: %+v", kc)
	}
	user := kc.AuthInfos[ctx.AuthInfo]
	if ctx.AuthInfo != "wirespan-operator" || user.Token != "secret-token" || len(user.ClientCertificateData) > 0 || len(user.ClientKeyData) > 0 {
		t.Errorf("user %s: %+v", ctx.AuthInfo, user)
	}
	if len(kc.AuthInfos) != 1 {
		t.Errorf("the admin credentials leaked into the token kubeconfig: %v", kc.AuthInfos)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig mode: %v %v", st.Mode(), err)
	}
}
