// Package pki makes the certificates and kubeconfig a lab cluster's control
// plane runs on: a CA, the API server's serving certificate, an admin client
// certificate and the service-account signing key. ECDSA P-256 throughout,
// because it is generated in microseconds where RSA takes most of a second.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Files are the paths Write produced.
type Files struct {
	CACert, ServerCert, ServerKey, SAKey, SAPub, Kubeconfig string
}

// Request says whom the certificates are for.
type Request struct {
	Cluster string
	// ServerIPs and ServerNames go in the serving certificate's SANs.
	ServerIPs   []net.IP
	ServerNames []string
	// Server is the URL the kubeconfig points at.
	Server string
}

// Write makes a CA, a serving and an admin client certificate, and a
// service-account key pair in dir, and an admin kubeconfig next to them.
func Write(dir string, req Request) (Files, error) {
	f := Files{
		CACert:     filepath.Join(dir, "ca.crt"),
		ServerCert: filepath.Join(dir, "apiserver.crt"),
		ServerKey:  filepath.Join(dir, "apiserver.key"),
		SAKey:      filepath.Join(dir, "sa.key"),
		SAPub:      filepath.Join(dir, "sa.pub"),
		Kubeconfig: filepath.Join(dir, "admin.kubeconfig"),
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return f, err
	}
	ca, caKey, err := newCert(req.Cluster+" lab CA", nil, nil, nil, nil, nil)
	if err != nil {
		return f, err
	}
	server, serverKey, err := newCert("kube-apiserver", nil, req.ServerIPs, req.ServerNames, ca, caKey)
	if err != nil {
		return f, err
	}
	// system:masters: the lab's own tools and the components it runs are
	// all trusted; RBAC for Wirespan is tested separately, with the chart.
	admin, adminKey, err := newCert("lab-admin", []string{"system:masters"}, nil, nil, ca, caKey)
	if err != nil {
		return f, err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return f, err
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return f, err
	}
	for path, block := range map[string]*pem.Block{
		f.CACert:     certBlock(ca),
		f.ServerCert: certBlock(server),
		f.ServerKey:  mustKeyBlock(serverKey),
		f.SAKey:      mustKeyBlock(saKey),
		f.SAPub:      {Type: "PUBLIC KEY", Bytes: saPub},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			return f, err
		}
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters[req.Cluster] = &clientcmdapi.Cluster{Server: req.Server, CertificateAuthorityData: pem.EncodeToMemory(certBlock(ca))}
	kc.AuthInfos["lab-admin"] = &clientcmdapi.AuthInfo{
		ClientCertificateData: pem.EncodeToMemory(certBlock(admin)),
		ClientKeyData:         pem.EncodeToMemory(mustKeyBlock(adminKey)),
	}
	kc.Contexts[req.Cluster] = &clientcmdapi.Context{Cluster: req.Cluster, AuthInfo: "lab-admin"}
	kc.CurrentContext = req.Cluster
	if err := clientcmd.WriteToFile(*kc, f.Kubeconfig); err != nil {
		return f, fmt.Errorf("write kubeconfig: %w", err)
	}
	return f, nil
}

// newCert issues a certificate signed by parent, or a self-signed CA when
// parent is nil.
func newCert(cn string, orgs []string, ips []net.IP, names []string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: orgs},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		IPAddresses:  ips,
		DNSNames:     names,
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	signer, signerKey := tmpl, key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	} else {
		signer, signerKey = parent, parentKey
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		if len(ips)+len(names) > 0 {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		return nil, nil, fmt.Errorf("issue certificate for %s: %w", cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func certBlock(c *x509.Certificate) *pem.Block { return &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw} }

func mustKeyBlock(k *ecdsa.PrivateKey) *pem.Block {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		// Only fails for curves x509 does not know; P-256 it knows.
		panic(err)
	}
	return &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
}

// TokenKubeconfig writes a kubeconfig at path for the cluster of the
// kubeconfig at base that authenticates with a bearer token, such as a
// ServiceAccount's, instead of base's certificate.
func TokenKubeconfig(base, path, user, token string) error {
	kc, err := clientcmd.LoadFromFile(base)
	if err != nil {
		return fmt.Errorf("read kubeconfig: %w", err)
	}
	current, ok := kc.Contexts[kc.CurrentContext]
	if !ok || kc.Clusters[current.Cluster] == nil {
		return fmt.Errorf("%s has no current context with a cluster", base)
	}
	out := clientcmdapi.NewConfig()
	out.Clusters[current.Cluster] = kc.Clusters[current.Cluster]
	out.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	out.Contexts[kc.CurrentContext] = &clientcmdapi.Context{Cluster: current.Cluster, AuthInfo: user}
	out.CurrentContext = kc.CurrentContext
	if err := clientcmd.WriteToFile(*out, path); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}
