{{/* Names: <release>-<chart> unless the release already says it, cut to 63 characters. */}}
{{- define "labelstack.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "labelstack.fullname" -}}
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

{{/* The operator's objects: <fullname>-operator. */}}
{{- define "labelstack.operatorName" -}}
{{- printf "%s-operator" (include "labelstack.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "labelstack.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "labelstack.selectorLabels" -}}
app.kubernetes.io/name: {{ include "labelstack.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "labelstack.labels" -}}
helm.sh/chart: {{ include "labelstack.chart" . }}
{{ include "labelstack.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: labelstack
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "labelstack.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "labelstack.operatorName" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* registry/repository:tag, or registry/repository@digest. */}}
{{- define "labelstack.image" -}}
{{- $repo := .Values.image.repository }}
{{- if .Values.image.registry }}
{{- $repo = printf "%s/%s" (trimSuffix "/" .Values.image.registry) $repo }}
{{- end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repo .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The namespaces a namespaced operator watches: the list, else the release's. */}}
{{- define "labelstack.watchedNamespaces" -}}
{{- if .Values.watch.namespaces }}
{{- join "," (uniq .Values.watch.namespaces) }}
{{- else }}
{{- .Release.Namespace }}
{{- end }}
{{- end }}

{{/* Cluster-wide, the namespaces where the operator may read and create Secrets: the list, else the
  release's and the inline stack's. */}}
{{- define "labelstack.secretNamespaces" -}}
{{- if .Values.rbac.secretNamespaces }}
{{- join "," (uniq .Values.rbac.secretNamespaces) }}
{{- else }}
{{- join "," (uniq (list .Release.Namespace (default .Release.Namespace .Values.stack.namespace))) }}
{{- end }}
{{- end }}

{{/* The inline stack's name, checked here because the operator names children <stack>-<part>. */}}
{{- define "labelstack.stackName" -}}
{{- $name := default .Release.Name .Values.stack.name }}
{{- if gt (len $name) 30 }}
{{- fail (printf "stack.name %q is longer than 30 characters (children are named <stack>-<part>); set stack.name" $name) }}
{{- end }}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $name) }}
{{- fail (printf "stack.name %q must be a DNS label: lower-case letters, digits and '-', starting with a letter; set stack.name" $name) }}
{{- end }}
{{- $name }}
{{- end }}

{{- define "labelstack.stackNamespace" -}}
{{- default .Release.Namespace .Values.stack.namespace }}
{{- end }}
