{{- define "dht-relay.labels" -}}
app.kubernetes.io/name: dht-relay
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{- define "dht-relay.securityContext" -}}
runAsNonRoot: true
runAsUser: 65532
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "dht-relay.commonEnv" -}}
- name: DHTRELAY_NATS
  value: {{ required "nats.url is required" .Values.nats.url | quote }}
{{- if .Values.nats.credsSecret }}
- name: DHTRELAY_NATS_CREDS
  value: /etc/dht-relay/nats/creds/creds
{{- end }}
{{- if .Values.nats.tlsSecret }}
- name: DHTRELAY_NATS_CA
  value: /etc/dht-relay/nats/tls/ca.crt
{{- if .Values.nats.tlsClientCert }}
- name: DHTRELAY_NATS_CERT
  value: /etc/dht-relay/nats/tls/tls.crt
- name: DHTRELAY_NATS_KEY
  value: /etc/dht-relay/nats/tls/tls.key
{{- end }}
{{- end }}
- name: DHTRELAY_MAX_SESSIONS
  value: {{ .Values.limits.maxSessions | quote }}
- name: DHTRELAY_MAX_STREAMS
  value: {{ .Values.limits.maxStreams | quote }}
- name: DHTRELAY_MAX_SERVERS
  value: {{ .Values.limits.maxServers | quote }}
- name: DHTRELAY_MAX_QUERIES
  value: {{ .Values.limits.maxQueries | quote }}
- name: DHTRELAY_METRICS
  value: {{ printf "0.0.0.0:%v" .Values.metricsPort | quote }}
- name: POD_IP
  valueFrom: {fieldRef: {fieldPath: status.podIP}}
- name: DHTRELAY_GOSSIP_BIND
  value: {{ printf "0.0.0.0:%v" .Values.gossipPort | quote }}
- name: DHTRELAY_GOSSIP_ADVERTISE
  value: {{ printf "$(POD_IP):%v" .Values.gossipPort | quote }}
- name: DHTRELAY_GOSSIP_JOIN
  value: {{ printf "%s-gossip.%s.svc:%v" .Release.Name .Release.Namespace .Values.gossipPort | quote }}
- name: DHTRELAY_GOSSIP_KEY
  valueFrom: {secretKeyRef: {name: {{ printf "%s-gossip" .Release.Name }}, key: key}}
- name: DHTRELAY_DRAIN
  value: {{ printf "%vs" .Values.drainSeconds | quote }}
{{- end }}

{{- define "dht-relay.lifecycle" -}}
# Readiness turns 503 as the drain starts; the pause lets the endpoints
# drop the pod before it refuses new sessions.
lifecycle:
  preStop:
    sleep: {seconds: 5}
{{- end }}

{{- define "dht-relay.probes" -}}
livenessProbe:
  httpGet: {path: /healthz, port: metrics}
  periodSeconds: 10
readinessProbe:
  httpGet: {path: /readyz, port: metrics}
  periodSeconds: 5
{{- end }}

{{- define "dht-relay.gossipPorts" -}}
- {name: gossip-udp, containerPort: {{ .Values.gossipPort }}, protocol: UDP}
- {name: gossip-tcp, containerPort: {{ .Values.gossipPort }}, protocol: TCP}
{{- end }}

{{/* The gossip key: the one given, else the one an earlier install made,
else a new one. */}}
{{- define "dht-relay.gossipKey" -}}
{{- if .Values.gossipKey -}}
{{ .Values.gossipKey }}
{{- else -}}
{{- $s := lookup "v1" "Secret" .Release.Namespace (printf "%s-gossip" .Release.Name) -}}
{{- if and $s $s.data -}}
{{ index $s.data "key" | b64dec }}
{{- else -}}
{{ randBytes 32 | b64enc }}
{{- end -}}
{{- end -}}
{{- end }}

{{/* What every pod of a component has besides its own: env, scheduling. */}}
{{- define "dht-relay.podExtras" -}}
{{- with .affinity }}
affinity: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .topologySpreadConstraints }}
topologySpreadConstraints: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "dht-relay.componentEnv" -}}
- name: GOMEMLIMIT
  value: {{ .goMemLimit | quote }}
{{- with .extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The NATS files a pod mounts: credentials and TLS. */}}
{{- define "dht-relay.natsMounts" -}}
{{- if .Values.nats.credsSecret }}
- {name: nats-creds, mountPath: /etc/dht-relay/nats/creds, readOnly: true}
{{- end }}
{{- if .Values.nats.tlsSecret }}
- {name: nats-tls, mountPath: /etc/dht-relay/nats/tls, readOnly: true}
{{- end }}
{{- end }}

{{- define "dht-relay.natsVolumes" -}}
{{- with .Values.nats.credsSecret }}
- name: nats-creds
  secret: {secretName: {{ . | quote }}}
{{- end }}
{{- with .Values.nats.tlsSecret }}
- name: nats-tls
  secret: {secretName: {{ . | quote }}}
{{- end }}
{{- end }}
