{{/*
Chart name, truncated to 63 characters (the DNS label limit).
*/}}
{{- define "iperf3-monitor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified name: the prefix of every object name. Truncated to 52
characters so that "<fullname>-manual" (NOTES.txt) and the CronJob's Job
names (CronJob name + 11 characters) stay within 63.
*/}}
{{- define "iperf3-monitor.fullname" -}}
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

{{- define "iperf3-monitor.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "iperf3-monitor.labels" -}}
helm.sh/chart: {{ include "iperf3-monitor.chart" . }}
{{ include "iperf3-monitor.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels shared by every component; add app.kubernetes.io/component.
*/}}
{{- define "iperf3-monitor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "iperf3-monitor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Whether the chart runs the second, pod-network server DaemonSet
(server.podNetwork.enabled); fails when it would duplicate the first.
podNetwork may be missing (helm upgrade --reuse-values from an older chart).
*/}}
{{- define "iperf3-monitor.podNetworkServers" -}}
{{- if dig "podNetwork" "enabled" false .Values.server }}
{{- if not .Values.server.hostNetwork }}
{{- fail "server.podNetwork.enabled adds a pod-network DaemonSet beside the host-network one, but server.hostNetwork=false already puts the servers on the pod network: set server.hostNetwork=true to measure both networks, or server.podNetwork.enabled=false to measure the pod network only" }}
{{- end -}}
true
{{- end }}
{{- end }}

{{/*
The component labels of the server pods: `server` (the DaemonSet
<fullname>-server), and `server-pod` with server.podNetwork.enabled.
*/}}
{{- define "iperf3-monitor.serverComponents" -}}
{{- if include "iperf3-monitor.podNetworkServers" . }}server,server-pod{{ else }}server{{ end }}
{{- end }}

{{- define "iperf3-monitor.jobSelectorLabels" -}}
{{ include "iperf3-monitor.selectorLabels" . }}
app.kubernetes.io/component: job
{{- end }}

{{/*
The job's --selector: exactly the server pods of this release, of both
DaemonSets with server.podNetwork.enabled (a set-based requirement,
`app.kubernetes.io/component in (server,server-pod)`); the job tells their
networks apart by spec.hostNetwork.
*/}}
{{- define "iperf3-monitor.serverSelector" -}}
{{- $labels := include "iperf3-monitor.selectorLabels" . | fromYaml }}
{{- $components := include "iperf3-monitor.serverComponents" . }}
{{- if eq $components "server" }}
{{- $_ := set $labels "app.kubernetes.io/component" "server" }}
{{- end }}
{{- $pairs := list }}
{{- range $key := keys $labels | sortAlpha }}
{{- $pairs = append $pairs (printf "%s=%s" $key (get $labels $key)) }}
{{- end }}
{{- if ne $components "server" }}
{{- $pairs = prepend $pairs (printf "app.kubernetes.io/component in (%s)" $components) }}
{{- end }}
{{- join "," $pairs }}
{{- end }}

{{- define "iperf3-monitor.serviceAccountName" -}}
{{- default (include "iperf3-monitor.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{/*
Image reference from an image block: repository@digest, else repository:tag
(tag defaulting to the chart's appVersion).
*/}}
{{- define "iperf3-monitor.image" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .appVersion .image.tag) }}
{{- end }}
{{- end }}

{{- define "iperf3-monitor.serverImage" -}}
{{- include "iperf3-monitor.image" (dict "image" .Values.server.image "appVersion" .Chart.AppVersion) }}
{{- end }}

{{/*
The job's image: each job.image field falls back to the server's.
*/}}
{{- define "iperf3-monitor.jobImageBlock" -}}
{{- $server := .Values.server.image }}
{{- $job := .Values.job.image }}
{{- $digest := $job.digest | default $server.digest }}
{{- if $job.tag }}
{{- $digest = $job.digest }}
{{- end }}
repository: {{ default $server.repository $job.repository }}
tag: {{ default $server.tag $job.tag | quote }}
digest: {{ $digest | quote }}
pullPolicy: {{ default $server.pullPolicy $job.pullPolicy }}
{{- end }}

{{- define "iperf3-monitor.jobImage" -}}
{{- $image := include "iperf3-monitor.jobImageBlock" . | fromYaml }}
{{- include "iperf3-monitor.image" (dict "image" $image "appVersion" .Chart.AppVersion) }}
{{- end }}

{{/*
checkov skip annotations (a dict) for a workload's image: it is referenced
by an immutable release tag unless a digest is given.
*/}}
{{- define "iperf3-monitor.imageCheckovSkips" -}}
{{- if not .digest }}
checkov.io/skip-image-digest: CKV_K8S_43=Pinned to the chart's release tag; set server.image.digest to pin by digest
checkov.io/skip-image-pull: CKV_K8S_15=IfNotPresent with a release tag; Always would make every run depend on the registry
{{- else }}
{}
{{- end }}
{{- end }}

{{/*
Seconds between two runs: job.interval, else derived from job.schedule.
Fails for schedules it cannot read, asking for job.interval.
*/}}
{{- define "iperf3-monitor.interval" -}}
{{- $schedule := .Values.job.schedule | trim }}
{{- if .Values.job.interval }}
{{- .Values.job.interval }}
{{- else if has $schedule (list "@hourly") }}
{{- 3600 }}
{{- else if has $schedule (list "@daily" "@midnight") }}
{{- 86400 }}
{{- else if regexMatch "^\\*(/[0-9]+)?\\s+\\*\\s+\\*\\s+\\*\\s+\\*$" $schedule }}
{{- $step := regexFind "^\\*/[0-9]+" $schedule | trimPrefix "*/" | default "1" | atoi }}
{{- if or (lt $step 1) (ne (mod 60 $step) 0) }}
{{- fail (printf "job.schedule %q: the minute step must divide 60; set job.interval to the seconds between runs" $schedule) }}
{{- end }}
{{- mul $step 60 }}
{{- else if regexMatch "^[0-9]+\\s+\\*\\s+\\*\\s+\\*\\s+\\*$" $schedule }}
{{- 3600 }}
{{- else if regexMatch "^[0-9]+\\s+[0-9]+\\s+\\*\\s+\\*\\s+\\*$" $schedule }}
{{- 86400 }}
{{- else }}
{{- fail (printf "job.schedule %q: cannot derive the interval between runs from it; set job.interval to the seconds between runs" $schedule) }}
{{- end }}
{{- end }}

{{/*
The time of one run, all in seconds. A run must end before the next starts
(concurrencyPolicy Forbid would delay it), and it should spend as much of its
interval as it can measuring, so nothing is reserved for worst cases that a
deadline already bounds:

  budget + delivery + margin <= activeDeadlineSeconds < interval

  activeDeadlineSeconds  job.activeDeadlineSeconds, else interval - min(10, interval/10)
  delivery               min(5, push deadline): what a push takes when the receiver is
                         up (well under a second for a run's samples). A slower push
                         runs into activeDeadlineSeconds; the job then gets SIGTERM and
                         its push goes on until push.deadline or the pod's grace period
  margin                 5 for the pod's start (the image is already on the node, the
                         servers run it) + the last test's overrun: a test starts
                         while duration + 0.1 s fit in the budget but may run until
                         the test timeout
  budget                 job.budget, else what the others leave: discovery and measuring

Every 5 minutes with the defaults: 276 + 5 + (5 + 9 - 5) = 290 < 300; the run
measures for 92 % of its interval.
*/}}
{{- define "iperf3-monitor.activeDeadlineSeconds" -}}
{{- if .Values.job.activeDeadlineSeconds }}
{{- .Values.job.activeDeadlineSeconds }}
{{- else }}
{{- $interval := include "iperf3-monitor.interval" . | atoi }}
{{- sub $interval (min 10 (div $interval 10)) }}
{{- end }}
{{- end }}

{{- define "iperf3-monitor.deliveryReserve" -}}
{{- min 5 (include "iperf3-monitor.pushDeadline" . | atoi) }}
{{- end }}

{{- define "iperf3-monitor.pushDeadline" -}}
{{- if .Values.push.deadline }}
{{- .Values.push.deadline }}
{{- else }}
{{- min 60 (div (include "iperf3-monitor.interval" . | atoi) 5) }}
{{- end }}
{{- end }}

{{/*
A test's hard timeout: job.testTimeout, else the binary's default.
*/}}
{{- define "iperf3-monitor.testTimeout" -}}
{{- if .Values.job.testTimeout }}
{{- .Values.job.testTimeout }}
{{- else }}
{{- add (int .Values.job.duration) (int (.Values.job.connectTimeout | default 2)) 2 }}
{{- end }}
{{- end }}

{{- define "iperf3-monitor.runMargin" -}}
{{- sub (add 5 (include "iperf3-monitor.testTimeout" . | atoi)) (int .Values.job.duration) }}
{{- end }}

{{- define "iperf3-monitor.budget" -}}
{{- if .Values.job.budget }}
{{- .Values.job.budget }}
{{- else }}
{{- $deadline := include "iperf3-monitor.activeDeadlineSeconds" . | atoi }}
{{- $push := include "iperf3-monitor.deliveryReserve" . | atoi }}
{{- $margin := include "iperf3-monitor.runMargin" . | atoi }}
{{- sub (sub $deadline $push) $margin }}
{{- end }}
{{- end }}

{{/*
Fails unless the run's times fit together (see above), naming the values to
change.
*/}}
{{- define "iperf3-monitor.checkRunTimes" -}}
{{- $interval := include "iperf3-monitor.interval" . | atoi }}
{{- $deadline := include "iperf3-monitor.activeDeadlineSeconds" . | atoi }}
{{- $push := include "iperf3-monitor.deliveryReserve" . | atoi }}
{{- $margin := include "iperf3-monitor.runMargin" . | atoi }}
{{- $testTimeout := include "iperf3-monitor.testTimeout" . | atoi }}
{{- $budget := include "iperf3-monitor.budget" . | atoi }}
{{- $duration := int .Values.job.duration }}
{{- $source := ternary "job.budget" (printf "derived: activeDeadlineSeconds %d - delivery %d - margin %d" $deadline $push $margin) (not (empty .Values.job.budget)) }}
{{- if ge $deadline $interval }}
{{- fail (printf "job.activeDeadlineSeconds (%d) must be shorter than the interval between runs (%d seconds): a run still going at the next schedule delays it (concurrencyPolicy Forbid)" $deadline $interval) }}
{{- end }}
{{- if le $budget $duration }}
{{- fail (printf "job.duration (%d) must be shorter than the run's budget (%d seconds, %s): lower job.duration or job.testTimeout, or run less often (job.schedule)" $duration $budget $source) }}
{{- end }}
{{- if gt (add $budget $push $margin) $deadline }}
{{- fail (printf "a run does not fit in job.activeDeadlineSeconds (%d seconds): job.budget %d + delivery %d + margin %d (5 for the pod's start + job.testTimeout %d - job.duration) = %d; lower job.budget, or raise job.activeDeadlineSeconds (below the interval, %d seconds)" $deadline $budget $push $margin $testTimeout (add $budget $push $margin) $interval) }}
{{- end }}
{{- end }}

{{/*
Whether the job needs cluster-scoped permissions.
*/}}
{{- define "iperf3-monitor.needsClusterRole" -}}
{{- if or .Values.job.discovery.allNamespaces .Values.job.discovery.nodeLabelKeys }}true{{ end }}
{{- end }}

{{/*
Why the release namespace's Pod Security Admission `enforce` level refuses the
server pods, or nothing. Servers on the host network (and so with host ports)
pass only "privileged"; the job's pods pass "restricted", and so do the servers
with server.hostNetwork=false and the default security contexts. lookup reads
the namespace only against a cluster (helm install/upgrade, --dry-run=server):
under helm template it finds nothing and the check passes. podSecurity may be
missing altogether (helm upgrade --reuse-values from a chart without it): "fail".
*/}}
{{- define "iperf3-monitor.podSecurityCheck" -}}
{{- dig "check" "fail" (.Values.podSecurity | default dict) }}
{{- end }}

{{- define "iperf3-monitor.podSecurityProblem" -}}
{{- if and .Values.server.hostNetwork (ne (include "iperf3-monitor.podSecurityCheck" .) "none") }}
{{- $level := "" }}
{{- with lookup "v1" "Namespace" "" .Release.Namespace }}
{{- with .metadata.labels }}
{{- $level = index . "pod-security.kubernetes.io/enforce" | default "" }}
{{- end }}
{{- end }}
{{- if has $level (list "baseline" "restricted") -}}
namespace {{ .Release.Namespace }} enforces the Pod Security level "{{ $level }}" (label pod-security.kubernetes.io/enforce), which refuses the iperf3 servers: on the host network (server.hostNetwork=true, with host ports) they need "privileged", so the DaemonSet would have no pods. Label the namespace (kubectl label namespace {{ .Release.Namespace }} --overwrite pod-security.kubernetes.io/enforce=privileged), install into a namespace of its own with that label, or set server.hostNetwork=false to measure the pod network (those servers pass "restricted"). podSecurity.check=warn only warns; none skips the check.
{{- end }}
{{- end }}
{{- end }}


{{/*
Alert rule literals. A number as PromQL and people read it: no exponent, no
trailing zeros (100, 0.5, 2.5).
*/}}
{{- define "iperf3-monitor.alertNumber" -}}
{{- regexReplaceAll "\\.?0+$" (printf "%f" (float64 .)) "" }}
{{- end }}

{{/*
Seconds as a PromQL duration: whole minutes as "10m", else "45s".
*/}}
{{- define "iperf3-monitor.promDuration" -}}
{{- if eq (mod . 60) 0 }}{{ div . 60 }}m{{ else }}{{ . }}s{{ end }}
{{- end }}

{{/*
Seconds in words: "10 minutes", "1 minute", "45 seconds".
*/}}
{{- define "iperf3-monitor.humanDuration" -}}
{{- if eq . 60 }}1 minute{{ else if eq (mod . 60) 0 }}{{ div . 60 }} minutes{{ else }}{{ . }} seconds{{ end }}
{{- end }}

{{/*
Where the iperf3 authentication Secret is mounted: the same path in the server
and job pods, because in mesh mode the job names files in the server pods.
Fails on an incomplete iperf3Auth.
*/}}
{{- define "iperf3-monitor.iperf3AuthDir" -}}
{{- if not .Values.iperf3Auth.existingSecret }}
{{- fail "iperf3Auth.enabled needs iperf3Auth.existingSecret: a Secret with the servers' key pair, the authorized users file and the clients' password" }}
{{- end -}}
/etc/iperf3-monitor/iperf3-auth
{{- end }}
