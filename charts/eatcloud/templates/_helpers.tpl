{{/* Names and labels shared by every object of the release. */}}
{{- define "eatcloud.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "eatcloud.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component (api, worker, migrations). */}}
{{- define "eatcloud.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "eatcloud.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "eatcloud.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "eatcloud.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{- define "eatcloud.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "eatcloud.fullname" .)) -}}
{{- end -}}

{{/* The API's own Secret: the token signing key, which nothing else mounts. */}}
{{- define "eatcloud.apiSecretName" -}}
{{- .Values.secrets.existingApiSecret | default (printf "%s-api-secrets" (include "eatcloud.fullname" .)) -}}
{{- end -}}

{{/* The settings every EatCloud container reads: the ConfigMap and the Secret. */}}
{{- define "eatcloud.envFrom" -}}
- configMapRef:
    name: {{ include "eatcloud.fullname" . }}-config
- secretRef:
    name: {{ include "eatcloud.secretName" . }}
{{- end -}}

{{/* Pod-level settings shared by api, worker and the migrations Job. */}}
{{- define "eatcloud.podSpecCommon" -}}
serviceAccountName: {{ include "eatcloud.serviceAccountName" . }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The init container that holds a pod back until the migrations Job has run. */}}
{{- define "eatcloud.waitForSchema" -}}
{{- if .Values.migrations.enabled }}
initContainers:
  - name: wait-for-schema
    image: {{ include "eatcloud.image" . }}
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    command: ["eatcloud", "db", "wait", "--timeout", "{{ .Values.migrations.waitTimeoutSeconds }}"]
    envFrom:
      {{- include "eatcloud.envFrom" . | nindent 6 }}
    securityContext:
      {{- toYaml .Values.securityContext | nindent 6 }}
    resources:
      {{- toYaml .Values.migrations.resources | nindent 6 }}
{{- end }}
{{- end -}}

{{/* Scheduling of one component: nodeSelector, tolerations, affinity. */}}
{{- define "eatcloud.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
