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

{{/*
The owner and source kinds, as "group/resource": what the guard watches to trace custody (the
ClusterRole) and what scale discovery leaves out (none has a scale subresource today; if one ever
has, it stays the custody entry's alone).
*/}}
{{- define "gitops-guard.custodyKinds" -}}
{{- list "source.toolkit.fluxcd.io/gitrepositories" "source.toolkit.fluxcd.io/ocirepositories" "source.toolkit.fluxcd.io/helmrepositories" "source.toolkit.fluxcd.io/helmcharts" "source.toolkit.fluxcd.io/buckets" "source.toolkit.fluxcd.io/externalartifacts" "source.extensions.fluxcd.io/artifactgenerators" "kustomize.toolkit.fluxcd.io/kustomizations" "helm.toolkit.fluxcd.io/helmreleases" "image.toolkit.fluxcd.io/imagerepositories" "image.toolkit.fluxcd.io/imagepolicies" "image.toolkit.fluxcd.io/imageupdateautomations" "argoproj.io/applications" "argoproj.io/applicationsets" "argoproj.io/appprojects" | toJson -}}
{{- end -}}

{{/*
The kinds whose /scale the scale entry routes and whose parent the guard GETs, as JSON
[{"apiGroup": g, "resource": r}], sorted and without duplicates: webhook.scale.targets, plus, with
webhook.scale.discover, every kind of a CustomResourceDefinition with a served version that has
a scale subresource (found by lookup at install and upgrade; nothing under `helm template`). A CRD
installed later is routed after the next `helm upgrade`.
*/}}
{{- define "gitops-guard.scaleTargets" -}}
{{- $seen := dict -}}
{{- range .Values.webhook.scale.targets -}}
{{- $_ := set $seen (printf "%s/%s" (default "" .apiGroup) .resource) true -}}
{{- end -}}
{{- if .Values.webhook.scale.discover -}}
{{- $custody := include "gitops-guard.custodyKinds" . | fromJsonArray -}}
{{- $crds := lookup "apiextensions.k8s.io/v1" "CustomResourceDefinition" "" "" -}}
{{- range $crd := (dig "items" (list) ($crds | default dict)) -}}
{{- $key := printf "%s/%s" $crd.spec.group $crd.spec.names.plural -}}
{{- range $v := $crd.spec.versions -}}
{{- if and $v.served (dig "subresources" "scale" nil $v) (not (has $key $custody)) -}}
{{- $_ := set $seen $key true -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $out := list -}}
{{- range $key := keys $seen | sortAlpha -}}
{{- $parts := splitList "/" $key -}}
{{- $out = append $out (dict "apiGroup" (index $parts 0) "resource" (index $parts 1)) -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/*
The status writes that set where a Service's or an Ingress's traffic arrives (status.loadBalancer,
which external-dns publishes), as a JSON list of rules: the guard lets only Kubernetes, the agents
and config.loadBalancerControllers change it on a managed object. Labelled objects' status goes to
the label entries; these rules route the unlabelled ones (neighbours-unlabelled, enforce-all).
*/}}
{{- define "gitops-guard.loadBalancerStatusRules" -}}
{{- toJson (list
    (dict "apiGroups" (list "") "resources" (list "services/status") "operations" (list "UPDATE"))
    (dict "apiGroups" (list "networking.k8s.io") "resources" (list "ingresses/status") "operations" (list "UPDATE"))) -}}
{{- end -}}

{{/*
What the neighbours entries route (webhook.neighbours), as JSON {"any": rules, "unlabelled": rules}:
  any         whatever the labels (the neighbours entry, no objectSelector): the Pods beneath
              managed workloads and what Kubernetes derives from them and from Services. Their
              labels are copied by Kubernetes' controllers, so they say nothing about ownership;
              exec/attach/port-forward and evictions carry no labels at all. No other entry
              routes these.
  unlabelled  objects without an ownership label (the neighbours-unlabelled entry): hand-made
              Jobs and objects that steer managed ones (autoscalers, PodDisruptionBudgets, and
              workloads whose Pods a managed Service would select). Labelled ones are managed
              objects and go to the label entries.
*/}}
{{- define "gitops-guard.neighbourRules" -}}
{{- $cud := list "CREATE" "UPDATE" "DELETE" -}}
{{- $any := list
    (dict "apiGroups" (list "") "resources" (list "pods" "endpoints") "operations" $cud)
    (dict "apiGroups" (list "") "resources" (list "pods/ephemeralcontainers" "pods/status") "operations" (list "UPDATE"))
    (dict "apiGroups" (list "") "resources" (list "pods/eviction") "operations" (list "CREATE"))
    (dict "apiGroups" (list "") "resources" (list "pods/exec" "pods/attach" "pods/portforward") "operations" (list "CONNECT"))
    (dict "apiGroups" (list "apps") "resources" (list "replicasets" "controllerrevisions") "operations" $cud)
    (dict "apiGroups" (list "apps") "resources" (list "statefulsets/status") "operations" (list "UPDATE"))
    (dict "apiGroups" (list "discovery.k8s.io") "resources" (list "endpointslices") "operations" $cud) -}}
{{- $unlabelled := list
    (dict "apiGroups" (list "batch") "resources" (list "jobs") "operations" $cud)
    (dict "apiGroups" (list "autoscaling") "resources" (list "horizontalpodautoscalers") "operations" $cud)
    (dict "apiGroups" (list "autoscaling.k8s.io") "resources" (list "verticalpodautoscalers") "operations" $cud)
    (dict "apiGroups" (list "keda.sh") "resources" (list "scaledobjects") "operations" $cud)
    (dict "apiGroups" (list "policy") "resources" (list "poddisruptionbudgets") "operations" $cud)
    (dict "apiGroups" (list "apps") "resources" (list "deployments" "statefulsets" "daemonsets") "operations" (list "CREATE" "UPDATE"))
    (dict "apiGroups" (list "") "resources" (list "replicationcontrollers") "operations" (list "CREATE" "UPDATE"))
    (dict "apiGroups" (list "batch") "resources" (list "cronjobs") "operations" (list "CREATE" "UPDATE"))
    (dict "apiGroups" (list "networking.k8s.io") "resources" (list "ingresses") "operations" (list "CREATE" "UPDATE")) -}}
{{- $unlabelled = concat $unlabelled (include "gitops-guard.loadBalancerStatusRules" . | fromJsonArray) -}}
{{- $out := dict "any" list "unlabelled" list -}}
{{- range $part, $rules := dict "any" $any "unlabelled" $unlabelled -}}
{{- range $rules -}}
{{- $_ := set $out $part (append (get $out $part) (merge (dict "apiVersions" (list "*") "scope" "Namespaced") .)) -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/*
(list rules taken) -> rules without the (group, resource, operation)s that a rule in `taken` routes,
as a JSON list. Keeps the entries a partition: another entry gives up what a neighbours entry takes.
A rule whose resources are "*" in a group `taken` names cannot be split: it fails, asking for the
resources to be listed.
*/}}
{{- define "gitops-guard.withoutRules" -}}
{{- $taken := index . 1 -}}
{{- $out := list -}}
{{- range $rule := index . 0 -}}
{{- $keep := list -}}
{{- range $group := $rule.apiGroups -}}
{{- $takenHere := list -}}
{{- range $taken -}}{{- if has $group .apiGroups -}}{{- $takenHere = append $takenHere . -}}{{- end -}}{{- end -}}
{{- if not $takenHere -}}
{{- $keep = append $keep $group -}}
{{- else -}}
{{- if has "*" $rule.resources -}}
{{- fail (printf "webhook.rules: resources \"*\" in group %q overlaps the neighbours entries (webhook.neighbours); list the resources instead." $group) -}}
{{- end -}}
{{- /* Resources with the same remaining operations share a rule. */ -}}
{{- $byOps := dict -}}
{{- $order := list -}}
{{- range $res := $rule.resources -}}
{{- $ops := $rule.operations -}}
{{- range $t := $takenHere -}}{{- if has $res $t.resources -}}{{- range $t.operations -}}{{- $ops = without $ops . -}}{{- end -}}{{- end -}}{{- end -}}
{{- if $ops -}}
{{- $k := join "," $ops -}}
{{- if not (hasKey $byOps $k) -}}{{- $order = append $order $k -}}{{- $_ := set $byOps $k (list) -}}{{- end -}}
{{- $_ := set $byOps $k (append (get $byOps $k) $res) -}}
{{- end -}}
{{- end -}}
{{- range $k := $order -}}
{{- $out = append $out (merge (dict "apiGroups" (list $group) "resources" (get $byOps $k) "operations" (splitList "," $k)) $rule) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if $keep -}}
{{- $out = append $out (merge (dict "apiGroups" $keep) $rule) -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/*
The API groups the cluster serves, from .Capabilities.APIVersions ("v1", "apps/v1", "v1/Pod",
"apps/v1/Deployment": at install from the API server's discovery, under `helm template` only
Kubernetes' built-in groups), as a sorted JSON list ("" is the core group).
*/}}
{{- define "gitops-guard.servedGroups" -}}
{{- $groups := list -}}
{{- range .Capabilities.APIVersions -}}
{{- $parts := splitList "/" . -}}
{{- if or (eq (len $parts) 1) (regexMatch "^v[0-9]+((alpha|beta)[0-9]+)?$" (index $parts 0)) -}}
{{- $groups = append $groups "" -}}
{{- else -}}
{{- $groups = append $groups (index $parts 0) -}}
{{- end -}}
{{- end -}}
{{- $groups | uniq | sortAlpha | toJson -}}
{{- end -}}

{{/*
The rules of the entries that select on ownership labels, with webhook.labelledResources "all":
every resource of every served group (and of every group webhook.rules names), except
  - the custody groups (the custody entry's) and admissionregistration.k8s.io (never routed);
  - left out: events (core and events.k8s.io), coordination.k8s.io (leases), authorization.k8s.io
    and authentication.k8s.io (reviews), *metrics.k8s.io (read-only metrics), and in the core group
    bindings and componentstatuses (no objects to manage);
  - what Kubernetes writes with labels copied from a managed object (Pods, Endpoints,
    ReplicaSets, ControllerRevisions, EndpointSlices): the neighbours entry routes them whatever
    their labels; a Fail
    entry selecting on copied labels would block Kubernetes itself on clusters < 1.28.
The core and apps groups are listed by resource, every other group is "*"; each with its status
(before 1.22 a status write keeps metadata).
*/}}
{{- define "gitops-guard.labelledRules" -}}
{{- $skip := concat (include "gitops-guard.custodyGroups" . | fromJsonArray) (list "admissionregistration.k8s.io" "events.k8s.io" "coordination.k8s.io" "authorization.k8s.io" "authentication.k8s.io" "discovery.k8s.io" "" "apps") -}}
{{- $groups := include "gitops-guard.servedGroups" . | fromJsonArray -}}
{{- range .Values.webhook.rules -}}{{- $groups = concat $groups .apiGroups -}}{{- end -}}
{{- $wild := list -}}
{{- range $groups | uniq | sortAlpha -}}
{{- if not (or (has . $skip) (hasSuffix "metrics.k8s.io" .)) -}}
{{- $wild = append $wild . -}}
{{- end -}}
{{- end -}}
{{- $cud := list "CREATE" "UPDATE" "DELETE" -}}
{{- /* With their status: before Kubernetes 1.22 a status write keeps labels, annotations,
finalizers and owner references (statefulsets/status is the neighbours entry's). A Namespace's
finalize write keeps its metadata on every version. */ -}}
{{- $rules := list
    (dict "apiGroups" (list "") "resources" (list "configmaps" "limitranges" "namespaces" "namespaces/finalize" "namespaces/status" "nodes" "nodes/status" "persistentvolumeclaims" "persistentvolumeclaims/status" "persistentvolumes" "persistentvolumes/status" "podtemplates" "replicationcontrollers" "replicationcontrollers/status" "resourcequotas" "resourcequotas/status" "secrets" "serviceaccounts" "services" "services/status") "operations" $cud)
    (dict "apiGroups" (list "apps") "resources" (list "daemonsets" "daemonsets/status" "deployments" "deployments/status" "statefulsets") "operations" $cud) -}}
{{- if $wild -}}
{{- $rules = append $rules (dict "apiGroups" $wild "resources" (list "*" "*/status") "operations" $cud) -}}
{{- end -}}
{{- toJson $rules -}}
{{- end -}}

{{/*
A CEL expression, true when the request's user is one of the usernames given (a list): a
service account's name (system:serviceaccount:<ns>:<name>) counts only with the group the API
server gives every service account of that namespace (system:serviceaccounts:<ns>), as the guard
itself judges it, so a static-token, OIDC or x509 user merely named like the service account is
not skipped before the guard sees it.
*/}}
{{- define "gitops-guard.celUserIn" -}}
{{- $plain := list -}}
{{- $byNamespace := dict -}}
{{- range uniq . -}}
{{- $parts := splitList ":" . -}}
{{- if and (eq (len $parts) 4) (eq (index $parts 0) "system") (eq (index $parts 1) "serviceaccount") -}}
{{- $ns := index $parts 2 -}}
{{- $_ := set $byNamespace $ns (append (get $byNamespace $ns | default list) (toJson .)) -}}
{{- else -}}
{{- $plain = append $plain (toJson .) -}}
{{- end -}}
{{- end -}}
{{- $terms := list -}}
{{- if $plain -}}
{{- $terms = append $terms (printf "request.userInfo.username in [%s]" (join ", " $plain)) -}}
{{- end -}}
{{- range $ns := keys $byNamespace | sortAlpha -}}
{{- $terms = append $terms (printf "(has(request.userInfo.groups) && %s in request.userInfo.groups && request.userInfo.username in [%s])" (toJson (printf "system:serviceaccounts:%s" $ns)) (join ", " (get $byNamespace $ns))) -}}
{{- end -}}
{{- if $terms -}}({{ join "\n            || " $terms }}){{- else -}}false{{- end -}}
{{- end -}}
