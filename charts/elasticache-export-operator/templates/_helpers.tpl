{{/* Chart name. */}}
{{- define "ecx.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: <release>-<chart>, or the release name when it already contains the chart name. */}}
{{- define "ecx.fullname" -}}
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

{{- define "ecx.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every resource. */}}
{{- define "ecx.labels" -}}
helm.sh/chart: {{ include "ecx.chart" . }}
{{ include "ecx.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: elasticache-export-operator
{{- end }}

{{/* Selector labels of the operator pods. */}}
{{- define "ecx.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ecx.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "ecx.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ecx.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Names of cluster-scoped resources carry the release namespace too, so two releases in
     different namespaces do not collide. */}}
{{- define "ecx.clusterName" -}}
{{- if eq .Release.Namespace "default" }}
{{- include "ecx.fullname" . }}
{{- else }}
{{- printf "%s-%s" .Release.Namespace (include "ecx.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* The image reference. */}}
{{- define "ecx.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* The policy file path inside the container. */}}
{{- define "ecx.policyFile" -}}
/etc/elasticache-export-operator/policy.yaml
{{- end }}

{{/*
The operator's RBAC rules on SnapshotExports and Events, in the watched namespaces. Exactly the
calls the operator makes (tests/e2e/rbac.rs compares them with a recorded run; config/rbac/role.yaml
must hold the same rules):
- snapshotexports: list and watch (the watch cache), get (a fresh read after a status write
  conflicts with a stale cache), patch (JSON patch of metadata.finalizers for deletionPolicy: Delete).
- snapshotexports/status: update (status is replaced under the object's resourceVersion).
- events.k8s.io events: create, and patch to count repeats into a series.
*/}}
{{- define "ecx.rules" -}}
- apiGroups: ["elasticache-export.io"]
  resources: ["snapshotexports"]
  verbs: ["create", "delete", "get", "list", "patch", "watch"]
- apiGroups: ["elasticache-export.io"]
  resources: ["snapshotexports/status"]
  verbs: ["update"]
- apiGroups: ["elasticache-export.io"]
  resources: ["snapshotexportschedules"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["elasticache-export.io"]
  resources: ["snapshotexportschedules/status"]
  verbs: ["update"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
