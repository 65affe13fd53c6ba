{{/* The image: REGISTRY/REPOSITORY:TAG (tag defaults to the chart's appVersion). */}}
{{- define "mcp-kube.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.registry -}}
{{ .Values.image.registry }}/{{ .Values.image.repository }}:{{ $tag }}
{{- else -}}
{{ .Values.image.repository }}:{{ $tag }}
{{- end -}}
{{- end -}}

{{/* Labels on every object (the kustomize base's part-of, plus Helm's own). */}}
{{- define "mcp-kube.labels" -}}
app.kubernetes.io/part-of: mcp-kube
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The pod security context both pods run with (restricted Pod Security Standard). */}}
{{- define "mcp-kube.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "mcp-kube.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}

{{- define "mcp-kube.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "mcp-kube.serverUrl" -}}
http://mcp-kube-server.{{ .Release.Namespace }}.svc:8080/mcp
{{- end -}}
