{{/*
Names, labels and the values every template shares.
*/}}

{{- define "recluster.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "recluster.fullname" -}}
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

{{/* A resource name: fullname plus a suffix, within 63 characters. */}}
{{- define "recluster.componentName" -}}
{{- $full := include "recluster.fullname" .root }}
{{- printf "%s-%s" ($full | trunc (int (sub 62 (len .component)))) .component | trimSuffix "-" }}
{{- end }}

{{- define "recluster.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "recluster.selectorLabels" -}}
app.kubernetes.io/name: {{ include "recluster.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "recluster.labels" -}}
helm.sh/chart: {{ include "recluster.chart" .root }}
{{ include "recluster.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: recluster
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The chart's image: repository@digest, else repository:tag (tag defaults to appVersion). */}}
{{- define "recluster.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "recluster.jobImage" -}}
{{- default (include "recluster.image" .) .Values.job.image }}
{{- end }}

{{- define "recluster.operatorServiceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "recluster.componentName" (dict "root" . "component" "operator")) .Values.operator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "recluster.gatewayServiceAccountName" -}}
{{- if .Values.gateway.serviceAccount.create }}
{{- default (include "recluster.componentName" (dict "root" . "component" "gateway")) .Values.gateway.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.gateway.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The Jobs' service account: created by the chart in each watched namespace
(namespaced mode), else the one named in job.serviceAccount.name, else none
(each namespace's default).
*/}}
{{- define "recluster.jobServiceAccountCreated" -}}
{{- if and .Values.job.serviceAccount.create .Values.watchNamespaces }}true{{ end }}
{{- end }}

{{- define "recluster.jobServiceAccountName" -}}
{{- if include "recluster.jobServiceAccountCreated" . }}
{{- default (include "recluster.componentName" (dict "root" . "component" "job")) .Values.job.serviceAccount.name }}
{{- else }}
{{- .Values.job.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "recluster.storeClaimName" -}}
{{- include "recluster.componentName" (dict "root" . "component" "store") }}
{{- end }}

{{/* "true" when the chart creates the Parquet store's claim. */}}
{{- define "recluster.storeClaimCreated" -}}
{{- $parquet := .Values.store.parquet }}
{{- if and (eq .Values.store.type "parquet") $parquet.persistence.create (not $parquet.volume) }}true{{ end }}
{{- end }}

{{/*
"true" when the created claim attaches to one node at a time (no ReadWriteMany):
the operator and every Job must then run on one node, for RWO lets several pods
of one node share a volume, never pods of two nodes (a Multi-Attach error).
*/}}
{{- define "recluster.storeOnOneNode" -}}
{{- if include "recluster.storeClaimCreated" . }}
{{- if not (has "ReadWriteMany" .Values.store.parquet.persistence.accessModes) }}true{{ end }}
{{- end }}
{{- end }}

{{/* Values that validate one by one but cannot work together: refuse them, saying why. */}}
{{- define "recluster.checkValues" -}}
{{- $modes := .Values.store.parquet.persistence.accessModes }}
{{- if and (include "recluster.storeClaimCreated" .) (has "ReadWriteOncePod" $modes) }}
{{- fail "store.parquet.persistence.accessModes ReadWriteOncePod admits one pod, but the operator and every Job mount the store (and the gateway, when enabled): use ReadWriteOnce (Jobs then run on the operator's node), ReadWriteMany, or store.type s3 or postgresql" }}
{{- end }}
{{- if include "recluster.storePodsOnOneNode" . }}
{{- range $key, $value := .Values.gateway.nodeSelector }}
{{- $operatorValue := get $.Values.operator.nodeSelector $key }}
{{- if and $operatorValue (ne (toString $operatorValue) (toString $value)) }}
{{- fail (printf "gateway.nodeSelector %s=%s and operator.nodeSelector %s=%s with gateway.enabled and a ReadWriteOnce store claim (store.parquet.persistence.accessModes %s): the gateway mounts the store read-only, so its pods must run on the operator's node, which no node can be for both. Give both the same nodeSelector, or use a store every node can mount: store.parquet.persistence.accessModes [ReadWriteMany], store.type=s3 or store.type=postgresql" $key (toString $value) $key (toString $operatorValue) (toJson $modes)) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and (include "recluster.storeOnOneNode" .) (gt (int .Values.operator.replicas) 1) }}
{{- fail (printf "operator.replicas=%d with a ReadWriteOnce store claim (store.parquet.persistence.accessModes %s): the claim attaches to one node at a time, so replicas and Jobs on other nodes would hang in ContainerCreating on a Multi-Attach error. Keep operator.replicas=1, or use a store every node can mount: store.parquet.persistence.accessModes [ReadWriteMany] (with a storage class that offers it), store.type=s3 or store.type=postgresql" (int .Values.operator.replicas) (toJson $modes)) }}
{{- end }}
{{- end }}

{{/*
The Jobs' affinity, for the store: with a claim on one node, every Job runs on
the node of the operator's pod (required, so a Job waits rather than fail to
mount). Empty otherwise.
*/}}
{{- define "recluster.jobAffinity" -}}
{{- if include "recluster.storeOnOneNode" . }}
podAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: kubernetes.io/hostname
      namespaces:
        - {{ .Release.Namespace }}
      labelSelector:
        matchLabels:
          {{- include "recluster.selectorLabels" (dict "root" . "component" "operator") | nindent 10 }}
{{- end }}
{{- end }}

{{/* The Parquet store's volume source, or nothing when the store is not a mounted path. */}}
{{- define "recluster.storeVolumeSource" -}}
{{- $parquet := .Values.store.parquet }}
{{- if eq .Values.store.type "parquet" }}
{{- if $parquet.volume }}
{{- toYaml $parquet.volume }}
{{- else if $parquet.persistence.create }}
persistentVolumeClaim:
  claimName: {{ include "recluster.storeClaimName" . }}
{{- end }}
{{- end }}
{{- end }}

{{/* Volumes added to the operator's pod and to every Job's pod. */}}
{{- define "recluster.storeVolumes" -}}
{{- $source := include "recluster.storeVolumeSource" . | fromYaml }}
{{- $volumes := list }}
{{- if $source }}
{{- $volumes = append $volumes (merge (dict "name" "store") $source) }}
{{- end }}
{{- toYaml (dict "items" $volumes) }}
{{- end }}

{{- define "recluster.storeVolumeMounts" -}}
{{- $mounts := list }}
{{- if include "recluster.storeVolumeSource" . }}
{{- $mounts = append $mounts (dict "name" "store" "mountPath" .Values.store.parquet.path) }}
{{- end }}
{{- toYaml (dict "items" $mounts) }}
{{- end }}

{{/* Environment that reaches the store: for the operator and (as RECLUSTER_JOB_ENV) every Job. */}}
{{- define "recluster.storeAccessEnv" -}}
{{- $env := list }}
{{- if eq .Values.store.type "s3" }}
{{- $s3 := .Values.store.s3 }}
{{- with $s3.endpointUrl }}
{{- $env = append $env (dict "name" "AWS_ENDPOINT_URL" "value" .) }}
{{- end }}
{{- with $s3.region }}
{{- $env = append $env (dict "name" "AWS_REGION" "value" .) }}
{{- $env = append $env (dict "name" "AWS_DEFAULT_REGION" "value" .) }}
{{- end }}
{{- with $s3.credentialsSecret.name }}
{{- $env = append $env (dict "name" "AWS_ACCESS_KEY_ID" "valueFrom" (dict "secretKeyRef" (dict "name" . "key" $s3.credentialsSecret.accessKeyIdKey))) }}
{{- $env = append $env (dict "name" "AWS_SECRET_ACCESS_KEY" "valueFrom" (dict "secretKeyRef" (dict "name" . "key" $s3.credentialsSecret.secretAccessKeyKey))) }}
{{- end }}
{{- end }}
{{- toYaml (dict "items" $env) }}
{{- end }}

{{/*
RECLUSTER_STORE_URI of the operator and the gateway (and, unless it comes from
a Secret, of every Job: the operator passes RECLUSTER_STORE_URI_SECRET then).
*/}}
{{- define "recluster.storeUriEnv" -}}
{{- $store := .Values.store }}
{{- $env := list }}
{{- if eq $store.type "postgresql" }}
{{- $ref := $store.postgresql.uriSecret }}
{{- $env = append $env (dict "name" "RECLUSTER_STORE_URI" "valueFrom" (dict "secretKeyRef" (dict "name" $ref.name "key" $ref.key))) }}
{{- else if eq $store.type "s3" }}
{{- $env = append $env (dict "name" "RECLUSTER_STORE_URI" "value" $store.s3.uri) }}
{{- else }}
{{- $env = append $env (dict "name" "RECLUSTER_STORE_URI" "value" $store.parquet.path) }}
{{- end }}
{{- toYaml (dict "items" $env) }}
{{- end }}

{{/*
The install-level store of a long-running pod of the release namespace, as
{env, volumes, volumeMounts}: the one home of what the operator and the gateway
both get. The install's credentials (the S3 keys, the PostgreSQL owner's DSN
from the Secrets of the release namespace) and the whole Parquet volume: the
operator writes and polls every namespace; the gateway reads runs of the
caller's namespace only (gateway/runs.py), so it mounts the volume read-only.
Argument: dict "root" (the chart context) "readOnly" (bool).
*/}}
{{- define "recluster.storePodAccess" -}}
{{- $root := .root }}
{{- $env := concat (include "recluster.storeUriEnv" $root | fromYaml).items (include "recluster.storeAccessEnv" $root | fromYaml).items }}
{{- $mounts := list }}
{{- range (include "recluster.storeVolumeMounts" $root | fromYaml).items }}
{{- $mounts = append $mounts (ternary (merge (dict "readOnly" true) .) . $.readOnly) }}
{{- end }}
{{- $volumes := (include "recluster.storeVolumes" $root | fromYaml).items }}
{{- toYaml (dict "env" $env "volumes" $volumes "volumeMounts" $mounts) }}
{{- end }}

{{/*
"true" when the operator and the gateway must share a node: both mount the
created single-node claim. Then every pod of either holds the volume on its
node, and a pod of the other scheduled elsewhere would never start (the
operator is recreated on upgrade; a gateway pod is replaced on a drain).
*/}}
{{- define "recluster.storePodsOnOneNode" -}}
{{- if and .Values.gateway.enabled (include "recluster.storeOnOneNode" .) }}true{{ end }}
{{- end }}

{{/*
A Deployment's affinity. With the store's pods on one node
(recluster.storePodsOnOneNode): the user's affinity plus a required pod
affinity to the operator's and gateway's pods of this release. Kubernetes lets
the first such pod go anywhere (a pod matching its own term, with no other
pod matching it), and every later one, operator or gateway, goes where the
volume already is. Otherwise the user's affinity, else replicas prefer
different nodes. Argument: dict "root" "component" "affinity" (the values').
*/}}
{{- define "recluster.deploymentAffinity" -}}
{{- $root := .root }}
{{- if include "recluster.storePodsOnOneNode" $root }}
{{- $affinity := deepCopy (.affinity | default dict) }}
{{- $podAffinity := get $affinity "podAffinity" | default dict }}
{{- $required := get $podAffinity "requiredDuringSchedulingIgnoredDuringExecution" | default list }}
{{- $selector := dict "matchLabels" (dict "app.kubernetes.io/name" (include "recluster.name" $root) "app.kubernetes.io/instance" $root.Release.Name) "matchExpressions" (list (dict "key" "app.kubernetes.io/component" "operator" "In" "values" (list "operator" "gateway"))) }}
{{- $term := dict "topologyKey" "kubernetes.io/hostname" "labelSelector" $selector }}
{{- $_ := set $podAffinity "requiredDuringSchedulingIgnoredDuringExecution" (append $required $term) }}
{{- $_ := set $affinity "podAffinity" $podAffinity }}
{{- toYaml $affinity }}
{{- else if .affinity }}
{{- toYaml .affinity }}
{{- else }}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "recluster.selectorLabels" . | nindent 12 }}
{{- end }}
{{- end }}

{{- define "recluster.operatorArgs" -}}
- operator
- --liveness=http://0.0.0.0:{{ .Values.operator.healthPort }}/healthz
{{- /* the Lease lives in the pod's namespace ($POD_NAMESPACE); identity: $POD_NAME */}}
- --leader-election
- --lease-name={{ include "recluster.componentName" (dict "root" . "component" "leader") }}
{{- range .Values.watchNamespaces }}
- --namespace={{ . }}
{{- end }}
{{- range .Values.operator.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/*
gateway.limits as the JSON object `recluster gateway` reads from RECLUSTER_GATEWAY_LIMITS:
the chart's camelCase names as the GatewaySettings fields they set (snake_case).
*/}}
{{- define "recluster.gatewayLimits" -}}
{{- $out := dict -}}
{{- range $name, $value := . -}}
{{- if eq $name "rateLimits" -}}
{{- $rates := dict -}}
{{- range $kind, $rate := $value -}}
{{- $one := dict -}}
{{- range $field, $v := $rate -}}
{{- $_ := set $one (snakecase $field) $v -}}
{{- end -}}
{{- $_ := set $rates $kind $one -}}
{{- end -}}
{{- $_ := set $out "rate_limits" $rates -}}
{{- else -}}
{{- $_ := set $out (snakecase $name) $value -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}
