{{/*
The chart's name: the app.kubernetes.io/name label.
*/}}
{{- define "kflcap.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The name of every object: the release name when it contains the chart's name
(release "kflcap" → "kflcap"), else "<release>-<chart>"; fullnameOverride
wins. 63 characters at most, the limit of a label value.
*/}}
{{- define "kflcap.fullname" -}}
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

{{/*
The Secret the agent's environment comes from.
*/}}
{{- define "kflcap.secretName" -}}
{{- default (include "kflcap.fullname" .) .Values.secret.name }}
{{- end }}
