{{/*
Names and labels.
*/}}
{{- define "gitops-guard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "gitops-guard.fullname" -}}
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

{{- define "gitops-guard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The label that marks the guard's own objects (app.kubernetes.io/part-of, the usual meaning). It
only labels: no webhook entry excludes it, since anyone who may label an object could set it to
slip past the guard. The guard's own objects stay out of its way by namespace (the release
namespace is always excluded), and its cluster-scoped ones carry no ownership label, so they never
reach an entry with failurePolicy Fail.
*/}}
{{- define "gitops-guard.selfLabelKey" -}}app.kubernetes.io/part-of{{- end -}}
{{- define "gitops-guard.selfLabelValue" -}}gitops-guard{{- end -}}

{{- define "gitops-guard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gitops-guard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "gitops-guard.labels" -}}
helm.sh/chart: {{ include "gitops-guard.chart" . }}
{{ include "gitops-guard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{ include "gitops-guard.selfLabelKey" . }}: {{ include "gitops-guard.selfLabelValue" . }}
{{- end -}}

{{- define "gitops-guard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "gitops-guard.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "gitops-guard.tlsSecretName" -}}
{{- printf "%s-tls" (include "gitops-guard.fullname" .) -}}
{{- end -}}

{{- define "gitops-guard.servingCertificateName" -}}
{{- printf "%s-serving" (include "gitops-guard.fullname" .) -}}
{{- end -}}

{{- define "gitops-guard.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/*
The DNS names the webhook Service answers to; the serving certificate covers all of them.
*/}}
{{- define "gitops-guard.dnsNames" -}}
{{- $svc := include "gitops-guard.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) | toJson -}}
{{- end -}}

{{/*
The serving certificate when cert-manager is off, as JSON {"ca": b64, "crt": b64, "key": b64}.

An existing Secret (from a previous install or upgrade) is reused as it is, so `helm upgrade`
never changes the CA the API server trusts. Only when there is none (first install, or `helm
template`, where lookup returns nothing) is a new CA and serving certificate generated. The result
is memoised in .Values so the Secret, the webhook configurations' caBundle and the Deployment's
checksum annotation all see the same certificate within one render.
*/}}
{{- define "gitops-guard.generatedTLS" -}}
{{- if not (hasKey .Values "__gitopsGuardTLS") -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "gitops-guard.tlsSecretName" .) -}}
{{- $data := dict -}}
{{- if $existing -}}{{- $data = default (dict) $existing.data -}}{{- end -}}
{{- $tls := dict -}}
{{- if and (index $data "ca.crt") (index $data "tls.crt") (index $data "tls.key") -}}
{{- $tls = dict "ca" (index $data "ca.crt") "crt" (index $data "tls.crt") "key" (index $data "tls.key") -}}
{{- else -}}
{{- $days := int .Values.tls.validityDays -}}
{{- $ca := genCA (printf "%s-ca" (include "gitops-guard.fullname" .)) $days -}}
{{- $dns := include "gitops-guard.dnsNames" . | fromJsonArray -}}
{{- $cert := genSignedCert (index $dns 2) nil $dns $days $ca -}}
{{- $tls = dict "ca" ($ca.Cert | b64enc) "crt" ($cert.Cert | b64enc) "key" ($cert.Key | b64enc) -}}
{{- end -}}
{{- $_ := set .Values "__gitopsGuardTLS" $tls -}}
{{- end -}}
{{- toJson (get .Values "__gitopsGuardTLS") -}}
{{- end -}}

{{/*
failurePolicy for one webhook entry. In audit mode the guard never denies, so failing closed could
only ever block a change because the guard is down: every entry is Ignore then.
*/}}
{{- define "gitops-guard.failurePolicy" -}}
{{- $root := index . 0 -}}
{{- $policy := index . 1 -}}
{{- if eq (toString $root.Values.config.mode) "audit" -}}Ignore{{- else -}}{{ $policy }}{{- end -}}
{{- end -}}

{{/*
The namespaces the guard never judges: webhook.excludeNamespaces plus the guard's own. On
Kubernetes >= 1.21 the webhook entries' namespaceSelector leaves them out; the guard's config file
gets them too (config.excludedNamespaces), which is what excludes them below 1.21.
*/}}
{{- define "gitops-guard.excludedNamespaces" -}}
{{- append .Values.webhook.excludeNamespaces .Release.Namespace | uniq | toJson -}}
{{- end -}}

{{/*
Whether namespaces may be excluded by the kubernetes.io/metadata.name label. From 1.21 the API
server sets it on every namespace to the namespace's name and refuses any other value. Before,
it is an ordinary label anyone allowed to label a namespace can set (relabel prod as kube-system
and no entry would see prod), so the chart leaves the exclusion to the guard, which decides it by
name.
*/}}
{{- define "gitops-guard.namespaceNameLabelIsTrusted" -}}
{{- if semverCompare ">=1.21-0" .Capabilities.KubeVersion.Version -}}true{{- end -}}
{{- end -}}

{{/*
config.excludedNamespaces as the guard gets it. Left at the chart's default (the list below, the
same as in values.yaml), it follows webhook.excludeNamespaces, so the API server (>= 1.21) and the
guard exclude the same namespaces; a list of your own replaces it. Either way the release
namespace is added: the guard's own objects are excluded by namespace only, and below 1.21 only
the guard excludes it.
*/}}
{{- define "gitops-guard.configExcludedNamespaces" -}}
{{- $default := list "kube-system" "kube-node-lease" "kube-public" -}}
{{- $set := default (list) .Values.config.excludedNamespaces -}}
{{- if eq (toJson $set) (toJson $default) -}}
{{- include "gitops-guard.excludedNamespaces" . -}}
{{- else -}}
{{- append $set .Release.Namespace | uniq | toJson -}}
{{- end -}}
{{- end -}}

{{/*
The API groups of the GitOps owner and source kinds (Flux and Argo CD). Their rules in
webhook.rules go to the custody entry (failurePolicy webhook.custody.failurePolicy, no object
selector) and to no other entry; theirs are the only subresources routed (the status, where Flux
sources keep the artifact the guard trusts).
*/}}
{{- define "gitops-guard.custodyGroups" -}}
{{- list "source.toolkit.fluxcd.io" "source.extensions.fluxcd.io" "kustomize.toolkit.fluxcd.io" "helm.toolkit.fluxcd.io" "image.toolkit.fluxcd.io" "argoproj.io" | toJson -}}
{{- end -}}

{{/*
Whether the cluster evaluates matchConditions (admissionregistration.k8s.io/v1: beta and on by
default from 1.28, GA in 1.30).
*/}}
{{- define "gitops-guard.matchConditionsSupported" -}}
{{- if and .Values.webhook.matchConditions.enabled (semverCompare ">=1.28-0" .Capabilities.KubeVersion.Version) -}}true{{- end -}}
{{- end -}}
