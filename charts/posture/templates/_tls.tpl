{{/*
The certificates of tls.mode=helm, as JSON of base64 PEM:
{fingerprint, ca, webhookCrt, webhookKey, operatorCrt, operatorKey}.

One CA signs both serving certificates, so the webhook's caBundle, the collector Jobs
and the webhook's calls to the operator API all trust the same ca.crt. The CA's key is
not kept anywhere: when a certificate must change, everything is issued anew.

The Secrets and the webhook configuration are rendered by different templates and must
agree, so the result is generated once per render and kept on the root context.

When both Secrets exist and were issued for the same names (the fingerprint
annotation), they are reused: `helm upgrade` then changes neither the CA the API
server trusts nor the certificates the pods serve. (`helm template` cannot look up, so
it always generates.)
*/}}
{{- define "posture.tls.helm" -}}
{{- if not (hasKey .Release "postureTLS") }}
{{- $webhookNames := include "posture.tls.dnsNames" (dict "root" . "service" (include "posture.webhook.fullname" .)) | fromJsonArray }}
{{- $operatorNames := include "posture.tls.dnsNames" (dict "root" . "service" (include "posture.operator.fullname" .)) | fromJsonArray }}
{{- $ips := .Values.tls.extraIPs }}
{{- $fingerprint := toJson (list $webhookNames $operatorNames $ips) | sha256sum | trunc 32 }}
{{- $webhook := lookup "v1" "Secret" .Release.Namespace (include "posture.webhook.tlsSecretName" .) }}
{{- $operator := lookup "v1" "Secret" .Release.Namespace (include "posture.operator.tlsSecretName" .) }}
{{- $reuse := false }}
{{- if and $webhook $operator }}
{{- $ca := dig "data" "ca.crt" "" $webhook }}
{{- $sameNames := and (eq (dig "metadata" "annotations" "posture.dev/tls-names" "" $webhook) $fingerprint) (eq (dig "metadata" "annotations" "posture.dev/tls-names" "" $operator) $fingerprint) }}
{{- $reuse = and $ca $sameNames (eq $ca (dig "data" "ca.crt" "" $operator)) }}
{{- end }}
{{- $tls := dict "fingerprint" $fingerprint }}
{{- if $reuse }}
{{- $_ := set $tls "ca" (index $webhook.data "ca.crt") }}
{{- $_ := set $tls "webhookCrt" (index $webhook.data "tls.crt") }}
{{- $_ := set $tls "webhookKey" (index $webhook.data "tls.key") }}
{{- $_ := set $tls "operatorCrt" (index $operator.data "tls.crt") }}
{{- $_ := set $tls "operatorKey" (index $operator.data "tls.key") }}
{{- else }}
{{- $days := int .Values.tls.validityDays }}
{{- $ca := genCA (printf "%s-ca" (include "posture.fullname" .)) $days }}
{{- $wh := genSignedCert (index $webhookNames 2) $ips $webhookNames $days $ca }}
{{- $op := genSignedCert (index $operatorNames 2) $ips $operatorNames $days $ca }}
{{- $_ := set $tls "ca" ($ca.Cert | b64enc) }}
{{- $_ := set $tls "webhookCrt" ($wh.Cert | b64enc) }}
{{- $_ := set $tls "webhookKey" ($wh.Key | b64enc) }}
{{- $_ := set $tls "operatorCrt" ($op.Cert | b64enc) }}
{{- $_ := set $tls "operatorKey" ($op.Key | b64enc) }}
{{- end }}
{{- $_ := set .Release "postureTLS" $tls }}
{{- end }}
{{- toJson .Release.postureTLS }}
{{- end }}
