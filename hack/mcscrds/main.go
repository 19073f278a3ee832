// Command mcscrds writes the CRDs of the Multi-Cluster Services API
// (ServiceExport, ServiceImport) from the sigs.k8s.io/mcs-api module that
// go.mod pins into a folder, so that the chart ships exactly the version
// the code is built against. `make generate` runs it.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/mcs-api/config/crd"
)

func main() {
	out := flag.String("out", "charts/wirespan/files/crds", "folder to write the CRDs into")
	flag.Parse()
	for name, body := range map[string][]byte{
		"multicluster.x-k8s.io_serviceexports.yaml": crd.ServiceExportCRD,
		"multicluster.x-k8s.io_serviceimports.yaml": crd.ServiceImportCRD,
	} {
		if err := os.WriteFile(filepath.Join(*out, name), body, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "mcscrds:", err)
			os.Exit(1)
		}
	}
}
