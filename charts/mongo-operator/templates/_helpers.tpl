{{/* The chart's name, for app.kubernetes.io/name. */}}
{{- define "mongo-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The full name of the release's objects. */}}
{{- define "mongo-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels that select the operator's Pods (also what isolated MongoDB members admit). */}}
{{- define "mongo-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mongo-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The recommended labels, on every object. */}}
{{- define "mongo-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "mongo-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: mongo-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "mongo-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mongo-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The image, exactly as the container runs it; `run --image` gets the same string. */}}
{{- define "mongo-operator.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
The namespaces the operator watches, comma-separated: watchNamespaces, or the release
namespace; empty with clusterWide (every namespace).
*/}}
{{- define "mongo-operator.watched" -}}
{{- if .Values.clusterWide -}}
{{- if .Values.watchNamespaces -}}
{{- fail "clusterWide watches every namespace: leave watchNamespaces empty, or turn clusterWide off" -}}
{{- end -}}
{{- else -}}
{{- join "," (.Values.watchNamespaces | default (list .Release.Namespace)) -}}
{{- end -}}
{{- end }}
