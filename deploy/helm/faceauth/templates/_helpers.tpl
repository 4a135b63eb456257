{{/*
Helpers shared by every template. Component helpers take a dict: ctx (the root context) and
component ("detector", "embedder", "auth", or one of auth's jobs: "migrations", "attempts-prune",
"audit-prune").
*/}}

{{/* auth's Job and CronJob: the auth image and values, a pod that runs one command and ends. */}}
{{- define "faceauth.authJobs" -}}
["migrations", "attempts-prune", "audit-prune"]
{{- end -}}

{{/* Where a component's settings live in values: auth's jobs use auth's. */}}
{{- define "faceauth.valuesKey" -}}
{{- ternary "auth" .component (has .component (include "faceauth.authJobs" .ctx | fromJsonArray)) -}}
{{- end -}}

{{/* The model servers; auth calls both over gRPC. */}}
{{- define "faceauth.modelServers" -}}
{{- list "detector" "embedder" | toJson -}}
{{- end -}}

{{/* Every long-running service. */}}
{{- define "faceauth.services" -}}
{{- list "detector" "embedder" "auth" | toJson -}}
{{- end -}}

{{- define "faceauth.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-<chart>, or just <release> when it already contains the chart name. */}}
{{- define "faceauth.fullname" -}}
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

{{- define "faceauth.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Name of a component's resources: <fullname>-<component>. */}}
{{- define "faceauth.componentName" -}}
{{- printf "%s-%s" (include "faceauth.fullname" .ctx | trunc 50 | trimSuffix "-") .component -}}
{{- end -}}

{{/* Name of a model server's headless Service, which resolves to one address per ready pod. */}}
{{- define "faceauth.headlessName" -}}
{{- printf "%s-headless" (include "faceauth.componentName" .) -}}
{{- end -}}

{{- define "faceauth.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every resource; pass the root context. */}}
{{- define "faceauth.labels" -}}
helm.sh/chart: {{ include "faceauth.chart" . }}
app.kubernetes.io/name: {{ include "faceauth.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: faceauth
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels that pick a component's pods; never change them on an installed release. */}}
{{- define "faceauth.selectorLabels" -}}
app.kubernetes.io/name: {{ include "faceauth.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "faceauth.componentLabels" -}}
{{ include "faceauth.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
metadata.namespace, labels and annotations of a component's resource; optional keys: namespace
(overrides the release namespace), labels and annotations (added to the common ones).
*/}}
{{- define "faceauth.metadata" -}}
namespace: {{ .namespace | default (include "faceauth.namespace" .ctx) }}
labels:
  {{- include "faceauth.componentLabels" . | nindent 2 }}
  {{- with .labels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- $annotations := merge (dict) (.annotations | default dict) .ctx.Values.commonAnnotations }}
{{- with $annotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "faceauth.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "faceauth.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* "true" when a model server runs on a GPU, "" otherwise (auth never does). */}}
{{- define "faceauth.gpu" -}}
{{- if has .component (include "faceauth.modelServers" .ctx | fromJsonArray) -}}
{{- if and .ctx.Values.gpu.enabled (index .ctx.Values .component).gpu.enabled -}}
true
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Image reference of a component: registry/repository:tag[-gpu] or registry/repository@digest. */}}
{{- define "faceauth.image" -}}
{{- $root := .ctx -}}
{{- $image := (index $root.Values (include "faceauth.valuesKey" .)).image -}}
{{- $registry := $root.Values.global.imageRegistry | default $root.Values.image.registry -}}
{{- $repository := ternary (printf "%s/%s" $registry $image.repository) $image.repository (ne $registry "") -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $repository $image.digest -}}
{{- else -}}
{{- $tag := $image.tag | default $root.Values.image.tag | default $root.Chart.AppVersion | toString -}}
{{- if include "faceauth.gpu" . -}}
{{- $tag = printf "%s%s" $tag $root.Values.gpu.imageTagSuffix -}}
{{- end -}}
{{- printf "%s:%s" $repository $tag -}}
{{- end -}}
{{- end -}}

{{/* gRPC address of a model server as auth dials it: every pod behind its headless Service. */}}
{{- define "faceauth.grpcAddress" -}}
{{- $values := index .ctx.Values .component -}}
{{- printf "dns:///%s.%s.svc.%s:%d" (include "faceauth.headlessName" .) (include "faceauth.namespace" .ctx) .ctx.Values.clusterDomain (int $values.grpcPort) -}}
{{- end -}}

{{/* A probe (dict "probe" <values> "handler" <dict>) rendered as the probe body, nothing when disabled. */}}
{{- define "faceauth.probe" -}}
{{- if .probe.enabled -}}
{{- toYaml (merge (dict) .handler (omit .probe "enabled")) -}}
{{- end -}}
{{- end -}}

{{/* Container securityContext. */}}
{{- define "faceauth.containerSecurityContext" -}}
{{- if .Values.containerSecurityContext.enabled -}}
securityContext:
  {{- omit .Values.containerSecurityContext "enabled" | toYaml | nindent 2 }}
{{- end -}}
{{- end -}}

{{/*
What every pod spec of the chart starts with: service account, pull secrets, security context,
scheduling (GPU placement for model servers on GPUs) and the grace period.
*/}}
{{- define "faceauth.podSpecCommon" -}}
{{- $root := .ctx -}}
{{- $values := index $root.Values (include "faceauth.valuesKey" .) -}}
{{- $job := has .component (include "faceauth.authJobs" $root | fromJsonArray) -}}
{{- $gpu := include "faceauth.gpu" . -}}
{{- if eq .component "migrations" }}
{{- with $values.migrations.serviceAccountName }}
serviceAccountName: {{ . }}
{{- end }}
automountServiceAccountToken: false
{{- else if $job }}
serviceAccountName: {{ include "faceauth.serviceAccountName" $root }}
automountServiceAccountToken: false
{{- else }}
serviceAccountName: {{ include "faceauth.serviceAccountName" $root }}
automountServiceAccountToken: {{ $root.Values.serviceAccount.automountServiceAccountToken }}
{{- end }}
{{- with $root.Values.global.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- if $root.Values.podSecurityContext.enabled }}
securityContext:
  {{- omit $root.Values.podSecurityContext "enabled" | toYaml | nindent 2 }}
{{- end }}
{{- if not $job }}
{{- $nodeSelector := $values.nodeSelector | default dict }}
{{- $tolerations := $values.tolerations | default list }}
{{- if $gpu }}
{{- $nodeSelector = merge (dict) $nodeSelector $root.Values.gpu.nodeSelector }}
{{- $tolerations = concat $root.Values.gpu.tolerations $tolerations }}
{{- end }}
{{- with $nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if $values.affinity }}
affinity:
  {{- toYaml $values.affinity | nindent 2 }}
{{- else if or $gpu $values.podAntiAffinityPreset }}
affinity:
  {{- if and $gpu $root.Values.gpu.nodeAffinity }}
  nodeAffinity:
    {{- toYaml $root.Values.gpu.nodeAffinity | nindent 4 }}
  {{- end }}
  {{- with $values.podAntiAffinityPreset }}
  podAntiAffinity:
    {{- $term := dict "topologyKey" "kubernetes.io/hostname" "labelSelector" (dict "matchLabels" (include "faceauth.selectorLabels" $ | fromYaml)) }}
    {{- if eq . "hard" }}
    requiredDuringSchedulingIgnoredDuringExecution:
      {{- list $term | toYaml | nindent 6 }}
    {{- else }}
    preferredDuringSchedulingIgnoredDuringExecution:
      {{- list (dict "weight" 100 "podAffinityTerm" $term) | toYaml | nindent 6 }}
    {{- end }}
  {{- end }}
{{- end }}
{{- with $values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- tpl (toYaml .) $root | nindent 2 }}
{{- end }}
{{- with $values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
terminationGracePeriodSeconds: {{ $values.terminationGracePeriodSeconds }}
{{- end }}
{{- end -}}

{{/*
The start of a service Deployment's spec, up to and including the pod template's metadata; the caller
continues with the pod template's `spec:`. Optional key podAnnotations: annotations added to the pods.
*/}}
{{- define "faceauth.deploymentSpecHead" -}}
{{- $values := index .ctx.Values .component -}}
{{- if not $values.autoscaling.enabled }}
replicas: {{ $values.replicaCount }}
{{- end }}
revisionHistoryLimit: {{ $values.revisionHistoryLimit }}
{{- with $values.updateStrategy }}
strategy:
  {{- toYaml . | nindent 2 }}
{{- end }}
selector:
  matchLabels:
    {{- include "faceauth.selectorLabels" . | nindent 4 }}
template:
  metadata:
    labels:
      {{- include "faceauth.componentLabels" . | nindent 6 }}
      {{- with $values.podLabels }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    {{- with merge (dict) ($values.podAnnotations | default dict) (.podAnnotations | default dict) }}
    annotations:
      {{- toYaml . | nindent 6 }}
    {{- end }}
{{- end -}}

{{/* emptyDir volumes for the writable paths of a read-only root file system. */}}
{{- define "faceauth.writableVolumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
{{- if eq .component "auth" }}
- name: prometheus-multiproc
  emptyDir:
    medium: Memory
    sizeLimit: 64Mi
{{- end }}
{{- end -}}

{{- define "faceauth.writableVolumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if eq .component "auth" }}
- name: prometheus-multiproc
  mountPath: {{ include "faceauth.prometheusMultiprocDir" . }}
{{- end }}
{{- end -}}

{{- define "faceauth.prometheusMultiprocDir" -}}
/var/run/faceauth/prometheus
{{- end -}}

{{/* Database and JWT Secret names. */}}
{{- define "faceauth.databaseSecretName" -}}
{{- .Values.externalDatabase.existingSecret | default (printf "%s-database" (include "faceauth.fullname" .)) -}}
{{- end -}}

{{- define "faceauth.ownerDatabaseSecretName" -}}
{{- .Values.externalDatabase.owner.existingSecret | default (printf "%s-database-owner" (include "faceauth.fullname" .)) -}}
{{- end -}}

{{- define "faceauth.apiKeySecretName" -}}
{{- .Values.auth.bootstrapApiKey.existingSecret | default (printf "%s-api-key" (include "faceauth.fullname" .)) -}}
{{- end -}}

{{- define "faceauth.templateKeySecretName" -}}
{{- .Values.auth.templateKey.existingSecret | default (printf "%s-template-key" (include "faceauth.fullname" .)) -}}
{{- end -}}

{{- define "faceauth.apiKeyPepperSecretName" -}}
{{- .Values.auth.apiKeyPepper.existingSecret | default (printf "%s-api-key-pepper" (include "faceauth.fullname" .)) -}}
{{- end -}}

{{- define "faceauth.jwtSecretName" -}}
{{- .Values.auth.jwt.existingSecret | default (printf "%s-jwt" (include "faceauth.fullname" .)) -}}
{{- end -}}

{{- define "faceauth.rateLimitSecretName" -}}
{{- printf "%s-rate-limit" (include "faceauth.fullname" .) -}}
{{- end -}}

{{/* "true" when the chart deploys its own Redis for the rate limits: no other storage given. */}}
{{- define "faceauth.bundledRedis" -}}
{{- $rateLimit := .Values.auth.rateLimit -}}
{{- if and $rateLimit.redis.enabled (not $rateLimit.existingSecret) (not $rateLimit.storageUri) -}}
true
{{- end -}}
{{- end -}}

{{/*
FACEAUTH_RATE_LIMIT_STORAGE_URI's value or valueFrom: the URI in auth.rateLimit.existingSecret, else
auth.rateLimit.storageUri, else the bundled Redis' (with its password, in the chart's Secret). The
counts must be shared by every worker of every pod, or each one would allow the whole limit:
memory:// passes only for one pod with one worker, and no storage at all does not pass.
*/}}
{{- define "faceauth.rateLimitStorage" -}}
{{- $values := .Values.auth -}}
{{- $rateLimit := $values.rateLimit -}}
{{- if $rateLimit.existingSecret -}}
valueFrom:
  secretKeyRef:
    name: {{ $rateLimit.existingSecret }}
    key: {{ $rateLimit.existingSecretKey }}
{{- else if $rateLimit.storageUri -}}
{{- $pods := ternary $values.autoscaling.maxReplicas $values.replicaCount $values.autoscaling.enabled -}}
{{- if and (hasPrefix "memory://" (lower $rateLimit.storageUri)) (or (gt (int $values.workers) 1) (gt (int $pods) 1)) -}}
{{- fail (printf "auth.rateLimit.storageUri=memory:// counts in each gunicorn worker, so each of the %d worker(s) in each of up to %d pod(s) would allow the whole rate limit and the whole failed-authentication limit: use the bundled Redis (leave auth.rateLimit.storageUri empty, auth.rateLimit.redis.enabled=true), point storageUri (or existingSecret) at your Redis or Memcached, or run one pod with one worker" (int $values.workers) (int $pods)) -}}
{{- end -}}
value: {{ $rateLimit.storageUri | quote }}
{{- else if $rateLimit.redis.enabled -}}
valueFrom:
  secretKeyRef:
    name: {{ include "faceauth.rateLimitSecretName" . }}
    key: uri
{{- else -}}
{{- fail "auth.rateLimit: the counts need a storage shared by every auth worker and pod: set auth.rateLimit.storageUri or auth.rateLimit.existingSecret (a Redis or Memcached URI), or auth.rateLimit.redis.enabled=true" -}}
{{- end -}}
{{- end -}}

{{/* Environment shared by the auth container and auth's jobs. */}}
{{- define "faceauth.authEnv" -}}
{{- $db := .ctx.Values.externalDatabase }}
{{- if and (has .component (list "migrations" "audit-prune")) (or $db.owner.url $db.owner.existingSecret) }}
{{- /* Schema changes and audit pruning run as the owner role; the pods as the runtime role. */}}
- name: FACEAUTH_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "faceauth.ownerDatabaseSecretName" .ctx }}
      key: {{ $db.owner.existingSecretUrlKey }}
{{- if and (eq .component "migrations") $db.runtimeRole }}
- name: FACEAUTH_DB_RUNTIME_ROLE
  value: {{ $db.runtimeRole | quote }}
{{- end }}
{{- else }}
- name: FACEAUTH_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "faceauth.databaseSecretName" .ctx }}
      key: {{ $db.existingSecretUrlKey }}
{{- end }}
- name: FACEAUTH_LOG_LEVEL
  value: {{ .ctx.Values.auth.logLevel | quote }}
{{- with .ctx.Values.auth.lockout }}
- name: FACEAUTH_LOCKOUT_MAX_FAILURES
  value: {{ .maxFailures | quote }}
- name: FACEAUTH_LOCKOUT_WINDOW
  value: {{ .windowSeconds | quote }}
- name: FACEAUTH_LOCKOUT_MAX_WAIT
  value: {{ .maxWaitSeconds | quote }}
- name: FACEAUTH_LOCKOUT_PERMANENT_AFTER
  value: {{ .permanentAfter | quote }}
{{- end }}
{{- with .ctx.Values.auth.breaker }}
- name: FACEAUTH_BREAKER_MAX_FAILURES
  value: {{ .maxFailures | quote }}
- name: FACEAUTH_BREAKER_WINDOW
  value: {{ .windowSeconds | quote }}
- name: FACEAUTH_BREAKER_MIN_RATIO
  value: {{ .minRatio | quote }}
{{- end }}
- name: HOME
  value: /tmp
{{- with .ctx.Values.auth.extraEnv }}
{{ tpl (toYaml .) $.ctx }}
{{- end }}
{{- end -}}

{{/* Proxies that append to X-Forwarded-For in front of auth: the value, or for "auto" 1 behind the chart's Ingress, else 0. */}}
{{- define "faceauth.trustedProxyHops" -}}
{{- $hops := .Values.auth.trustedProxyHops -}}
{{- if eq (toString $hops) "auto" -}}
{{- ternary 1 0 .Values.ingress.enabled -}}
{{- else -}}
{{- $hops -}}
{{- end -}}
{{- end -}}

{{/* JWT issuer: the value, else the public URL when the Ingress is on, else "faceauth". */}}
{{- define "faceauth.jwtIssuer" -}}
{{- if .Values.auth.jwt.issuer -}}
{{- .Values.auth.jwt.issuer -}}
{{- else if .Values.ingress.enabled -}}
{{- printf "https://%s" .Values.ingress.hostname -}}
{{- else -}}
faceauth
{{- end -}}
{{- end -}}

{{/*
PromQL label matchers of a service's series, as ServiceMonitors label them:
job=<component> and the release namespace.
*/}}
{{- define "faceauth.promSelector" -}}
{{- printf "job=\"%s\",namespace=\"%s\"" .component (include "faceauth.namespace" .ctx) -}}
{{- end -}}

{{/*
gRPC TLS (grpcTls): the Secret of a component (detector, embedder, auth) holding ca.crt, tls.crt and
tls.key, as cert-manager writes them; its volume and mount, nothing when grpcTls is off.
*/}}
{{- define "faceauth.grpcTlsSecretName" -}}
{{- (index .ctx.Values.grpcTls .component).secretName | default (printf "%s-grpc-tls" (include "faceauth.componentName" .)) -}}
{{- end -}}

{{- define "faceauth.grpcTlsVolume" -}}
{{- if .ctx.Values.grpcTls.enabled -}}
- name: grpc-tls
  secret:
    secretName: {{ include "faceauth.grpcTlsSecretName" . }}
    # Readable by the pod's group (fsGroup) only.
    defaultMode: 0440
    items:
      - key: ca.crt
        path: ca.crt
      - key: tls.crt
        path: tls.crt
      - key: tls.key
        path: tls.key
{{- end -}}
{{- end -}}

{{- define "faceauth.grpcTlsVolumeMount" -}}
{{- if .ctx.Values.grpcTls.enabled -}}
- name: grpc-tls
  mountPath: {{ .ctx.Values.grpcTls.mountPath }}
  readOnly: true
{{- end -}}
{{- end -}}

{{/*
Generated Secrets (secrets.yaml) are read back from the cluster with `lookup`, so that upgrades keep
their keys. `lookup` answers nothing when the chart is rendered without a cluster (helm template, helm
install/upgrade --dry-run, ArgoCD, which renders with helm template): the chart would then make new
random keys, and applying that render would replace every key in use. "faceauth.clusterVisible" tells
the two apart by looking up what every namespace has, its `default` ServiceAccount.
*/}}
{{- define "faceauth.clusterVisible" -}}
{{- if lookup "v1" "ServiceAccount" (include "faceauth.namespace" .) "default" -}}
true
{{- end -}}
{{- end -}}

{{/* The data of the Secret .name in the release namespace as the cluster holds it, as JSON; {} when there is none. */}}
{{- define "faceauth.storedSecretData" -}}
{{- (lookup "v1" "Secret" (include "faceauth.namespace" .ctx) .name).data | default dict | toJson -}}
{{- end -}}

{{/* The values whose existing Secret replaces each Secret the chart would generate with these values. */}}
{{- define "faceauth.generatedSecrets" -}}
{{- $auth := .Values.auth -}}
{{- $generated := list -}}
{{- if not $auth.jwt.existingSecret }}{{ $generated = append $generated "auth.jwt.existingSecret" }}{{ end -}}
{{- if not $auth.templateKey.existingSecret }}{{ $generated = append $generated "auth.templateKey.existingSecret" }}{{ end -}}
{{- if not $auth.apiKeyPepper.existingSecret }}{{ $generated = append $generated "auth.apiKeyPepper.existingSecret" }}{{ end -}}
{{- if and $auth.bootstrapApiKey.enabled (not $auth.bootstrapApiKey.existingSecret) }}{{ $generated = append $generated "auth.bootstrapApiKey.existingSecret" }}{{ end -}}
{{- if include "faceauth.bundledRedis" . }}{{ $generated = append $generated "auth.rateLimit.existingSecret (or auth.rateLimit.storageUri)" }}{{ end -}}
{{- toJson $generated -}}
{{- end -}}

{{/*
Fails an install or upgrade render that would generate a Secret while the cluster cannot be read, unless
generatedSecrets.allowRandomOnTemplate says the render is thrown away (CI, a preview). A real `helm
install` on a fresh cluster generates keys as before, a real `helm upgrade` reads them back; `helm lint`
(neither an install nor an upgrade) is not refused.
*/}}
{{- define "faceauth.generatedSecretsGuard" -}}
{{- $generated := include "faceauth.generatedSecrets" . | fromJsonArray -}}
{{- if and $generated (or .Release.IsInstall .Release.IsUpgrade) (not .Values.generatedSecrets.allowRandomOnTemplate) (not (include "faceauth.clusterVisible" .)) -}}
{{- fail (printf "faceauth: this render cannot read the cluster (helm template, helm --dry-run, ArgoCD and other GitOps tools render without it), so the keys the chart generates for trials cannot be read back, and new random ones would replace those in use: every token, face template and API key would be lost once applied. Give your own Secrets: %s (deploy/helm/faceauth/README.md, section Keys and Secrets); or render against the cluster (helm install/upgrade, or --dry-run=server); or, for a render that is never applied (CI), set generatedSecrets.allowRandomOnTemplate=true" (join ", " $generated)) -}}
{{- end -}}
{{- end -}}
