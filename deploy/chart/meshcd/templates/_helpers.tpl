{{- define "meshcd.labels" -}}
app.kubernetes.io/name: meshcd
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
