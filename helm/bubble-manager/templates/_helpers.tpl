{{/* Names and labels shared by every template. */}}

{{- define "bm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "bm.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains (include "bm.name" .) .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "bm.name" .) | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels that select one component's pods: name, instance and component. */}}
{{- define "bm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bm.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "bm.labels" -}}
{{ include "bm.selectorLabels" . }}
app.kubernetes.io/part-of: bubble-manager
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "bm.image" -}}
{{- if .digest -}}
{{ .repository }}@{{ .digest }}
{{- else -}}
{{ .repository }}:{{ .tag }}
{{- end -}}
{{- end -}}

{{/* The hub Service's env-var prefix: Kubernetes gives the hub pod <NAME>_SERVICE_HOST for it. */}}
{{- define "bm.hubServiceEnv" -}}
{{- printf "%s_hub" (include "bm.fullname" .) | upper | replace "-" "_" -}}
{{- end -}}

{{/* hub.publicUrl without its optional trailing slash: https://<host>, JupyterHub's subdomain_host. */}}
{{- define "bm.publicUrl" -}}{{ trimSuffix "/" .Values.hub.publicUrl }}{{- end -}}

{{- define "bm.publicHost" -}}{{ include "bm.publicUrl" . | trimPrefix "https://" }}{{- end -}}

{{/* The panel's own origin: JupyterHub's subdomain hook ("idna") puts service <name> on <name>--service.<host>. */}}
{{- define "bm.servicePublicUrl" -}}https://bubble-manager--service.{{ include "bm.publicHost" . }}{{- end -}}

{{- define "bm.secretName" -}}{{ include "bm.fullname" . }}-secrets{{- end -}}

{{/* A value given inline (kept in the chart's Secret) wins over an existing Secret. */}}
{{- define "bm.databaseSecret" -}}
{{- if .Values.database.url -}}
name: {{ include "bm.secretName" . }}
key: database-url
{{- else -}}
name: {{ .Values.database.existingSecret.name }}
key: {{ .Values.database.existingSecret.key }}
{{- end -}}
{{- end -}}

{{- define "bm.oidcSecret" -}}
{{- if .Values.auth.oidc.clientSecret -}}
name: {{ include "bm.secretName" . }}
key: oidc-client-secret
{{- else -}}
name: {{ .Values.auth.oidc.existingSecret.name }}
key: {{ .Values.auth.oidc.existingSecret.key }}
{{- end -}}
{{- end -}}

{{/* Container hardening shared by every component. */}}
{{- define "bm.containerSecurity" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .gid }}
privileged: false
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "bm.podSecurity" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .gid }}
fsGroup: {{ .gid }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "bm.checkRelease" -}}
{{- if eq .Values.bubbles.namespace .Release.Namespace -}}
{{- fail (printf "bubbles.namespace (%s) must differ from the release namespace: bubbles live apart from the hub" .Values.bubbles.namespace) -}}
{{- end -}}
{{- if hasKey .Values.auth.oidc "callbackUrl" -}}
{{- fail (printf "auth.oidc.callbackUrl is no longer a value: remove it and set hub.publicUrl (https://<host>); the callback is derived as %s%shub/oauth_callback" (include "bm.publicUrl" .) .Values.hub.baseUrl) -}}
{{- end -}}
{{- if not (or .Values.database.url .Values.database.existingSecret.name) -}}
{{- fail "set database.url or database.existingSecret.name: bubble-manager on Kubernetes stores its state in PostgreSQL" -}}
{{- end -}}
{{- if and (eq .Values.auth.type "oidc") (not (or .Values.auth.oidc.clientSecret .Values.auth.oidc.existingSecret.name)) -}}
{{- fail "set auth.oidc.clientSecret or auth.oidc.existingSecret.name: the hub needs its OIDC client secret" -}}
{{- end -}}
{{- $roleOf := dict -}}
{{- range $role := list "researchers" "stewards" "admins" -}}
{{- range $group := (get $.Values.hub.groups $role | toStrings | uniq) -}}
{{- if hasKey $roleOf $group -}}
{{- fail (printf "hub.groups: the provider group %q gives both %s and %s; give each role its own group(s)" $group (get $roleOf $group) $role) -}}
{{- end -}}
{{- $_ := set $roleOf $group $role -}}
{{- end -}}
{{- end -}}
{{- end -}}
