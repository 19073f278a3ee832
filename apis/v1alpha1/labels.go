package v1alpha1

const (
	// LabelGateway marks the nodes that may run a gateway: value "true".
	LabelGateway = "wirespan.io/gateway"

	// KeySecretPrivateKey is the data key of the cluster key Secret that holds
	// the WireGuard private key, base64 as printed by `wg genkey`.
	KeySecretPrivateKey = "privateKey"

	// KeySecretPublicKey is the data key of the cluster key Secret that holds
	// the matching public key. The operator writes it for convenience; it is
	// always derived again from the private key, never trusted.
	KeySecretPublicKey = "publicKey"

	// AnnotationVersion is the annotation in which the active gateway
	// writes its version on the Lease that fences its role, on every
	// renewal: a reader of the Lease learns which gateway is active and
	// what it runs, as `kubectl wirespan diagnose` does. A handover removes
	// it until the successor writes its own.
	AnnotationVersion = "wirespan.io/version"

	// LabelManagedBy is set on objects Wirespan creates, with value
	// ManagedByValue.
	LabelManagedBy = "app.kubernetes.io/managed-by"

	// ManagedByValue is Wirespan's value for LabelManagedBy.
	ManagedByValue = "wirespan"
)
