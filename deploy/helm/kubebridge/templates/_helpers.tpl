{{/* The app name, "kubebridge" unless nameOverride is set. */}}
{{- define "kubebridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Object names: the release name, plus "-kubebridge" unless it already says kubebridge. */}}
{{- define "kubebridge.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "kubebridge.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "kubebridge.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Labels that select the pod (never change them on upgrade: selectors are immutable). */}}
{{- define "kubebridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubebridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "kubebridge.labels" -}}
{{ include "kubebridge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "kubebridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kubebridge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kubebridge.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* list and watch on each of watch.resources ("plural" or "plural.group"), then rbac.extraRules. */}}
{{- define "kubebridge.readRules" -}}
{{- range .Values.watch.resources }}
{{- $parts := splitn "." 2 . }}
- apiGroups: [{{ $parts._1 | default "" | quote }}]
  resources: [{{ $parts._0 | quote }}]
  verbs: ["list", "watch"]
{{- end }}
{{- with .Values.rbac.extraRules }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The Secret holding the redaction key (its key "key"). */}}
{{- define "kubebridge.redactionSecretName" -}}
{{- default (printf "%s-redaction-key" (include "kubebridge.fullname" .)) .Values.redaction.existingSecret }}
{{- end }}
