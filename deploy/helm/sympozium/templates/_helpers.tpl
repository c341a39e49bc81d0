{{/* The image of Sympozium component $name: <registry>/<name>:<tag>. */}}
{{- define "sympozium.image" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- printf "%s/%s:%s" (trimSuffix "/" $root.Values.image.registry) $name (include "sympozium.tag" $root) -}}
{{- end -}}

{{- define "sympozium.tag" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end -}}

{{/* Labels every object of the release carries. */}}
{{- define "sympozium.labels" -}}
app.kubernetes.io/part-of: sympozium
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ include "sympozium.tag" . | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Scheduling and pull secrets shared by every pod of the chart. */}}
{{- define "sympozium.podScheduling" -}}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* The NATS URL the controller uses. */}}
{{- define "sympozium.natsURL" -}}
{{- if .Values.nats.enabled -}}
{{- printf "nats://nats.%s.svc:4222" .Release.Namespace -}}
{{- else -}}
{{- .Values.nats.url -}}
{{- end -}}
{{- end -}}

{{/* Hardened container security context (all images run as a non-root user, no shell). */}}
{{- define "sympozium.containerSecurity" -}}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
{{- end -}}
