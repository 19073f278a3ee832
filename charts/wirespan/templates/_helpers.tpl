{{/*
Names. fullname is the release name, with the chart name appended unless
the release name already contains it: "wirespan" for `helm install wirespan`.
*/}}
{{- define "wirespan.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "wirespan.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Object names; components get a suffix of at most 9 characters. */}}
{{- define "wirespan.operator.name" -}}
{{- printf "%s-operator" (include "wirespan.fullname" . | trunc 54 | trimSuffix "-") }}
{{- end }}

{{- define "wirespan.gateway.name" -}}
{{- printf "%s-gateway" (include "wirespan.fullname" . | trunc 54 | trimSuffix "-") }}
{{- end }}

{{- define "wirespan.dns.name" -}}
{{- printf "%s-dns" (include "wirespan.fullname" . | trunc 54 | trimSuffix "-") }}
{{- end }}

{{/*
The cluster ID, required: every object that needs it calls this, so a
missing clusterID fails the render with this message (the schema refuses
an empty one first when schema validation is on).
*/}}
{{- define "wirespan.clusterID" -}}
{{- required "clusterID is required: set it to the ID of this cluster, the name of its ClusterPeer (an RFC 1123 label such as east), e.g. --set clusterID=east" .Values.clusterID }}
{{- end }}

{{/* The cluster key Secret: the user's, or the one the operator creates. */}}
{{- define "wirespan.keySecret" -}}
{{- default (printf "%s-cluster-key" (include "wirespan.fullname" . | trunc 50 | trimSuffix "-")) .Values.clusterKey.existingSecret }}
{{- end }}

{{/*
The addresses the operator forwards the clusterset zone to, as one
comma-separated string: coredns.forward may be a list or a string.
*/}}
{{- define "wirespan.corednsForward" -}}
{{- if kindIs "string" .Values.coredns.forward }}
{{- .Values.coredns.forward }}
{{- else }}
{{- join "," .Values.coredns.forward }}
{{- end }}
{{- end }}

{{/*
Whether the operator manages the CoreDNS Corefile: it does when there is
something to forward, or a block to clean up. Otherwise it gets neither
the flag nor any access to the ConfigMap. "true" or "".
*/}}
{{- define "wirespan.corednsManaged" -}}
{{- if and .Values.coredns.configMap (or (include "wirespan.corednsForward" .) .Values.coredns.cleanup) }}true{{ end }}
{{- end }}

{{/* The CoreDNS ConfigMap's namespace and name, split. */}}
{{- define "wirespan.corednsNamespace" -}}
{{- index (splitList "/" .Values.coredns.configMap) 0 }}
{{- end }}

{{- define "wirespan.corednsName" -}}
{{- index (splitList "/" .Values.coredns.configMap) 1 }}
{{- end }}

{{/* Whether to render the ServiceMonitor: "true" or "". */}}
{{- define "wirespan.serviceMonitor" -}}
{{- $v := .Values.serviceMonitor.enabled }}
{{- if or (eq (toString $v) "true") (and (eq (toString $v) "auto") (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1/ServiceMonitor")) }}true{{ end }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "wirespan.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "wirespan.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: wirespan
{{- end }}

{{/* Selector labels of a component: pass (list $ "operator"). */}}
{{- define "wirespan.selectorLabels" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/name: {{ include "wirespan.name" $ }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* Labels of a component's objects: pass (list $ "operator"). */}}
{{- define "wirespan.componentLabels" -}}
{{ include "wirespan.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* An image reference: pass (list $ .Values.operator.image). */}}
{{- define "wirespan.image" -}}
{{- $ := index . 0 }}
{{- $image := index . 1 }}
{{- printf "%s:%s" $image.repository (default $.Chart.AppVersion $image.tag) }}
{{- end }}

{{/* Checks across values that the schema cannot express. */}}
{{- define "wirespan.validate" -}}
{{- if and (include "wirespan.corednsForward" .) (not .Values.coredns.configMap) }}
{{- fail "coredns.forward needs coredns.configMap: the namespace/name of the CoreDNS ConfigMap to write the forwarding block to" }}
{{- end }}
{{- if and .Values.coredns.cleanup (not .Values.coredns.configMap) }}
{{- fail "coredns.cleanup needs coredns.configMap: the ConfigMap to remove the forwarding block from" }}
{{- end }}
{{- end }}
