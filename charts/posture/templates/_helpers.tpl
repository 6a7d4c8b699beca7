{{/* Names are cut at 63 characters, the limit of a label value and a DNS label. */}}
{{- define "posture.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's base name. A release called "posture" (or containing it) is not doubled
into "posture-posture", so the default install matches `posture webhook --print-config`.
It stops at 52 characters so that the Service names made from it ("-operator",
"-webhook") stay DNS labels.
*/}}
{{- define "posture.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "posture.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "posture.selectorLabels" -}}
app.kubernetes.io/name: {{ include "posture.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "posture.labels" -}}
helm.sh/chart: {{ include "posture.chart" . }}
{{ include "posture.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: posture
{{- end }}

{{/* Labels of one component: (dict "root" $ "component" "operator"). */}}
{{- define "posture.componentLabels" -}}
{{ include "posture.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "posture.componentSelectorLabels" -}}
{{ include "posture.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "posture.operator.fullname" -}}
{{ include "posture.fullname" . }}-operator
{{- end }}

{{- define "posture.webhook.fullname" -}}
{{ include "posture.fullname" . }}-webhook
{{- end }}

{{- define "posture.collector.serviceAccountName" -}}
{{ include "posture.fullname" . }}-collector
{{- end }}

{{- define "posture.operator.tlsSecretName" -}}
{{ include "posture.fullname" . }}-operator-tls
{{- end }}

{{- define "posture.webhook.tlsSecretName" -}}
{{ include "posture.fullname" . }}-webhook-tls
{{- end }}

{{/* The operator API as collector Jobs and the webhook reach it. */}}
{{- define "posture.operator.apiURL" -}}
{{- if .Values.operator.apiURL }}
{{- .Values.operator.apiURL }}
{{- else }}
{{- printf "https://%s.%s.svc:%d" (include "posture.operator.fullname" .) .Release.Namespace (int .Values.operator.apiPort) }}
{{- end }}
{{- end }}

{{/* repository:tag, or repository:tag@digest when a digest pins it. */}}
{{- define "posture.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* Fail when enforcing (a change must not slip through while the webhook is down), Ignore otherwise. */}}
{{- define "posture.admission.failurePolicy" -}}
{{- if .Values.admission.failurePolicy }}
{{- .Values.admission.failurePolicy }}
{{- else if eq .Values.admission.defaultMode "enforce" }}
{{- "Fail" }}
{{- else }}
{{- "Ignore" }}
{{- end }}
{{- end }}

{{/*
The DNS names of a Service's serving certificate: (dict "root" $ "service" "name").
Short forms for clients in the namespace, the full form for the API server.
*/}}
{{- define "posture.tls.dnsNames" -}}
{{- $ns := .root.Release.Namespace }}
{{- $names := list .service (printf "%s.%s" .service $ns) (printf "%s.%s.svc" .service $ns) (printf "%s.%s.svc.cluster.local" .service $ns) }}
{{- toJson (concat $names .root.Values.tls.extraDNSNames) }}
{{- end }}

{{/*
Restricted Pod Security: the pod-level part. 65532 is the "nonroot" user of
distroless images.
*/}}
{{- define "posture.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "posture.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
privileged: false
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Default scheduling: spread the replicas of a component over nodes when the cluster
has room, so one node going down does not take every replica with it.
(dict "root" $ "component" "webhook" "affinity" .Values.webhook.affinity)
*/}}
{{- define "posture.affinity" -}}
{{- if .affinity }}
{{- toYaml .affinity }}
{{- else -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "posture.componentSelectorLabels" (dict "root" .root "component" .component) | nindent 12 }}
{{- end }}
{{- end }}

{{/* Environment shared by posture's containers. */}}
{{- define "posture.env" -}}
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: HOSTNAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: RUST_LOG
  value: {{ .Values.log.level | quote }}
- name: POSTURE_LOG_FORMAT
  value: {{ .Values.log.format | quote }}
{{- /* mimalloc hands freed pages back to the system at once rather than after 1 s:
the watches' initial lists are freed in bursts, and an idle webhook would otherwise
keep them (BENCHMARKS.md, admission webhook memory). */}}
- name: MIMALLOC_PURGE_DELAY
  value: "0"
{{- end }}
