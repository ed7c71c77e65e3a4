{{/*
Every permission the operator and the gateway hold, in ONE place.

  <component>.watched  rules in each watched namespace: one ClusterRole when
                       watchNamespaces is empty, else a Role per namespace
  <component>.cluster  cluster-scoped rules, always in a ClusterRole
  <component>.clusterWhenNamespaced
                       cluster-scoped rules needed only when a list of
                       namespaces is watched
  <component>.release  rules in the release namespace only (a Role)

rbac.yaml renders them; tests/chart checks the rendered result, and the
least-privilege test compares it with the API calls the components make.
*/}}
{{- define "recluster.rbac.rules" -}}
operator:
  watched:
    - apiGroups: [recluster.io]
      resources: [clustertriggers]
      # get: re-read after a status write conflicted; patch: drop the finalizer
      # operators before 0.2 left (controller/reconciler.py)
      verbs: [get, list, watch, patch]
    - apiGroups: [recluster.io]
      resources: [clustertriggers/status]
      verbs: [patch]
    # Jobs name their trigger as owner with blockOwnerDeletion: where the
    # OwnerReferencesPermissionEnforcement admission plugin runs (OpenShift,
    # hardened clusters, the local control plane) that needs this grant.
    - apiGroups: [recluster.io]
      resources: [clustertriggers/finalizers]
      verbs: [update]
    - apiGroups: [recluster.io]
      resources: [clusterdefinitions]
      verbs: [list, watch]
    - apiGroups: [batch]
      resources: [jobs]
      verbs: [list, watch, create, delete]
    - apiGroups: [""]
      resources: [pods]
      verbs: [list, watch]
    - apiGroups: [""]
      resources: [events]
      verbs: [create]
    # Completion webhooks: the signing key a trigger's webhook names (secret_ref), read
    # with one GET per delivery attempt; never listed or watched (docs/notifications.md).
    - apiGroups: [""]
      resources: [secrets]
      verbs: [get]
    {{- if .Values.ray.enabled }}
    # runtime ray (ray.enabled): RayJobs instead of Jobs for the triggers that ask.
    - apiGroups: [ray.io]
      resources: [rayjobs]
      verbs: [list, watch, create, delete]
    {{- end }}
  # Nothing cluster-wide: the informers list and watch the watched namespaces only.
  cluster: []
  clusterWhenNamespaced: []
  release:
    # Leader election between the replicas.
    - apiGroups: [coordination.k8s.io]
      resources: [leases]
      verbs: [get, create, update]
    {{- with .Values.notifications.webhooks }}
    # The install's completion webhooks: their signing keys, by name only.
    - apiGroups: [""]
      resources: [secrets]
      resourceNames: {{ include "recluster.webhookSecrets" . }}
      verbs: [get]
    {{- end }}
gateway:
  watched:
    - apiGroups: [recluster.io]
      resources: [clustertriggers]
      verbs: [get, list, create, patch, delete]
    # Pushed events: event_counter and recent_event_keys (gateway/events.py).
    - apiGroups: [recluster.io]
      resources: [clustertriggers/status]
      verbs: [patch]
    - apiGroups: [recluster.io]
      resources: [clusterdefinitions]
      verbs: [list]
  cluster: []
  clusterWhenNamespaced: []
  release:
    # API keys: Secrets labelled recluster.io/api-key=true.
    - apiGroups: [""]
      resources: [secrets]
      verbs: [list]
{{- end }}

{{/*
Roles that extend the built-in admin/edit/view ClusterRoles, for people and
CI (not bound to any component of the chart).
*/}}
{{- define "recluster.rbac.userRules" -}}
edit:
  - apiGroups: [recluster.io]
    resources: [clustertriggers, clusterdefinitions]
    verbs: [get, list, watch, create, update, patch, delete, deletecollection]
view:
  - apiGroups: [recluster.io]
    resources: [clustertriggers, clusterdefinitions, clustertriggers/status, clusterdefinitions/status]
    verbs: [get, list, watch]
{{- end }}


{{/* The names of the Secrets the install's webhooks sign with, as a JSON list. */}}
{{- define "recluster.webhookSecrets" -}}
{{- $names := list }}
{{- range . }}{{ $names = append $names .secret_ref.name }}{{ end }}
{{- $names | uniq | toJson }}
{{- end }}
