#!/usr/bin/env bash
# A throw-away Kubernetes control plane for tests and demos: etcd + kube-apiserver v1.20.2 on free
# loopback ports, all state in one directory.
#
#   scripts/local-cluster.sh up DIR     start it, wait until ready (prints nothing but errors)
#   scripts/local-cluster.sh down DIR   stop every process of it and remove DIR
#
# `up` writes (see docs/architecture.md):
#   DIR/env                      export KUBECONFIG=DIR/admin.kubeconfig GG_APISERVER=... GG_CA=...
#   DIR/admin.kubeconfig         user admin  (group system:masters)
#   DIR/developer.kubeconfig     user ana    (group developers; bound to cluster-admin)
#   DIR/ci-bot.kubeconfig        user ci-bot (group ci; bound to cluster-admin)
#   DIR/pki/ca.crt, ca.key       the cluster CA (may sign other serving certs, e.g. a webhook's)
#   DIR/audit.log                API audit log (level Metadata, writes only)
#   DIR/*.log, DIR/*.pid         process logs and pids
# Every service account is bound to cluster-admin too (as Flux/Argo CD controllers are in real
# clusters), so only an admission webhook stops an impersonated `--as=system:serviceaccount:NS:NAME`.
# Namespace kube-system gets the label kubernetes.io/metadata.name=kube-system (1.21+ adds it itself).
#
# Environment:
#   GG_CLUSTER_OWNER_PID  if set, a watchdog runs `down DIR` as soon as that process is gone (so a
#                         killed test run leaves no processes behind)
#   GG_KUBE_APISERVER     kube-apiserver binary to use instead of scripts/build-kube-apiserver.sh's
#   KUBECTL               kubectl binary (default: kubectl on PATH)
#
# `down` also stops processes recorded in other DIR/*.pid files (e.g. a webhook a test started),
# but only if their command line refers to DIR.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
MARKER=.local-cluster
READY_TIMEOUT=60
KUBECTL="${KUBECTL:-kubectl}"

die() {
  echo "local-cluster: $*" >&2
  exit 1
}

usage() {
  echo "usage: $0 up DIR | down DIR" >&2
  exit 2
}

# alive PID: the process exists and is not a zombie.
alive() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [ "${stat%% *}" != Z ]
}

# ours PID: one of the process's arguments is DIR or a path inside it (protects against pid reuse).
ours() {
  local arg
  [ -r "/proc/$1/cmdline" ] || return 1
  while IFS= read -r -d '' arg; do
    case "$arg" in
      "$DIR" | "$DIR"/* | *="$DIR"/*) return 0 ;;
    esac
  done <"/proc/$1/cmdline" 2>/dev/null
  return 1
}

# stop_pids PID...: SIGTERM, wait up to 10 s, then SIGKILL and wait up to 5 s more.
stop_pids() {
  local pid i live=() still=()
  for pid in "$@"; do
    if alive "$pid" && ours "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      live+=("$pid")
    fi
  done
  for ((i = 0; i < 150; i++)); do
    still=()
    for pid in "${live[@]}"; do
      if alive "$pid"; then still+=("$pid"); fi
    done
    [ "${#still[@]}" -eq 0 ] && return 0
    [ "$i" -eq 100 ] && kill -KILL "${still[@]}" 2>/dev/null || true
    sleep 0.1
  done
  echo "local-cluster: could not stop pid(s) ${still[*]}" >&2
  return 1
}

pid_of() {
  local f="$DIR/$1.pid"
  [ -f "$f" ] && cat "$f"
  return 0
}

# stop_all: everything recorded in DIR/*.pid; etcd last so the apiserver can shut down cleanly.
stop_all() {
  local f pids=() rc=0
  for f in "$DIR"/*.pid; do
    [ -f "$f" ] || continue
    [ "$f" = "$DIR/etcd.pid" ] && continue
    pids+=("$(cat "$f")")
  done
  stop_pids "${pids[@]}" || rc=1
  stop_pids $(pid_of etcd) || rc=1
  return "$rc"
}

tail_log() {
  if [ -s "$DIR/$1" ]; then
    echo "--- last lines of $DIR/$1:" >&2
    tail -n 25 "$DIR/$1" >&2
  fi
}

free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

find_apiserver() {
  if [ -n "${GG_KUBE_APISERVER:-}" ]; then
    [ -x "$GG_KUBE_APISERVER" ] || die "GG_KUBE_APISERVER=$GG_KUBE_APISERVER is not an executable"
    echo "$GG_KUBE_APISERVER"
    return
  fi
  local cache="${GITOPS_GUARD_CACHE:-$HOME/.cache/gitops-guard}"
  mkdir -p "$cache"
  # Parallel `up`s must not build it twice: the first one builds, the others wait.
  (
    flock 9
    "$HERE/build-kube-apiserver.sh"
  ) 9>"$cache/build-kube-apiserver.lock" ||
    die "no kube-apiserver: scripts/build-kube-apiserver.sh failed (see above)"
}

make_pki() {
  local pki="$DIR/pki"
  mkdir -p "$pki"
  cat >"$pki/openssl.cnf" <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = gitops-guard local cluster
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.0.0.1
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF
  {
    openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 3650 -config "$pki/openssl.cnf" \
      -extensions ca -subj "/CN=gitops-guard local CA" -keyout "$pki/ca.key" -out "$pki/ca.crt"
    openssl req -new -newkey rsa:2048 -nodes -config "$pki/openssl.cnf" -subj "/CN=kube-apiserver" \
      -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr"
    openssl x509 -req -sha256 -days 3650 -in "$pki/apiserver.csr" -CA "$pki/ca.crt" \
      -CAkey "$pki/ca.key" -set_serial "0x$(openssl rand -hex 15)" -extfile "$pki/openssl.cnf" \
      -extensions server -out "$pki/apiserver.crt"
    # The API server's client certificate for webhooks (AdmissionConfiguration below), from a CA
    # of its own: a guard started with `--client-ca $DIR/pki/webhook-client-ca.crt` answers only
    # the API server, not users whose certificates the cluster CA signs.
    openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 3650 -config "$pki/openssl.cnf" \
      -extensions ca -subj "/CN=gitops-guard local webhook-client CA" \
      -keyout "$pki/webhook-client-ca.key" -out "$pki/webhook-client-ca.crt"
    openssl req -new -newkey rsa:2048 -nodes -config "$pki/openssl.cnf" \
      -subj "/CN=kube-apiserver-webhook-client" \
      -keyout "$pki/webhook-client.key" -out "$pki/webhook-client.csr"
    openssl x509 -req -sha256 -days 3650 -in "$pki/webhook-client.csr" \
      -CA "$pki/webhook-client-ca.crt" -CAkey "$pki/webhook-client-ca.key" \
      -set_serial "0x$(openssl rand -hex 15)" -extfile "$pki/openssl.cnf" -extensions client \
      -out "$pki/webhook-client.crt"
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key"
    openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
  } 2>"$pki/openssl.log" || {
    cat "$pki/openssl.log" >&2
    die "openssl failed to make the cluster PKI in $pki"
  }
}

write_kubeconfig() { # NAME TOKEN
  cat >"$DIR/$1.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(base64 -w0 <"$DIR/pki/ca.crt")
users:
- name: $1
  user:
    token: $2
contexts:
- name: $1@local
  context:
    cluster: local
    user: $1
current-context: $1@local
KC
}

admin_kubectl() {
  "$KUBECTL" --kubeconfig "$DIR/admin.kubeconfig" --cache-dir "$DIR/kubectl-cache" \
    --request-timeout=5s "$@"
}

fail_up() {
  trap - EXIT INT TERM
  echo "local-cluster: $*" >&2
  tail_log etcd.log
  tail_log kube-apiserver.log
  stop_all || true
  echo "local-cluster: processes stopped; logs kept in $DIR (remove with: $0 down $DIR)" >&2
  exit 1
}

up() {
  if [ -e "$DIR" ] && [ -n "$(ls -A "$DIR")" ]; then
    die "$DIR is not empty (a cluster may be running there: $0 down $DIR)"
  fi
  command -v etcd >/dev/null || die "etcd not found: install Debian's etcd-server (apt-get install etcd-server)"
  command -v openssl >/dev/null || die "openssl not found: install it (apt-get install openssl)"
  command -v python3 >/dev/null || die "python3 not found (used to pick free ports): install it"
  command -v "$KUBECTL" >/dev/null || die "kubectl not found: install it (Debian: apt-get install kubernetes-client)"
  local apiserver
  apiserver="$(find_apiserver)"

  mkdir -p "$DIR"
  DIR="$(cd "$DIR" && pwd)"
  touch "$DIR/$MARKER"
  local etcd_port peer_port
  read -r etcd_port peer_port API_PORT < <(free_ports 3)
  make_pki

  local admin_token dev_token ci_token
  admin_token="$(openssl rand -hex 16)"
  dev_token="$(openssl rand -hex 16)"
  ci_token="$(openssl rand -hex 16)"
  cat >"$DIR/tokens.csv" <<TOKENS
$admin_token,admin,admin,"system:masters"
$dev_token,ana,ana,"developers"
$ci_token,ci-bot,ci-bot,"ci"
TOKENS
  write_kubeconfig admin "$admin_token"
  write_kubeconfig developer "$dev_token"
  write_kubeconfig ci-bot "$ci_token"
  cat >"$DIR/audit-policy.yaml" <<'POLICY'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  verbs: [get, list, watch]
- level: Metadata
POLICY

  # Webhooks are called with a client certificate (every webhook host: `*`), as a cluster whose
  # admission config names a kubeconfig for them does; a webhook that asks for none ignores it.
  cat >"$DIR/admission-webhook-kubeconfig.yaml" <<KC
apiVersion: v1
kind: Config
users:
- name: "*"
  user:
    client-certificate: $DIR/pki/webhook-client.crt
    client-key: $DIR/pki/webhook-client.key
KC
  cat >"$DIR/admission-config.yaml" <<ADM
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: ValidatingAdmissionWebhook
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: $DIR/admission-webhook-kubeconfig.yaml
- name: MutatingAdmissionWebhook
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: $DIR/admission-webhook-kubeconfig.yaml
ADM

  trap 'fail_up "interrupted"' INT TERM
  trap 'fail_up "failed to start (exit $?)"' EXIT

  etcd --name local --data-dir "$DIR/etcd" --logger zap --log-level warn \
    --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "local=http://127.0.0.1:$peer_port" \
    </dev/null >"$DIR/etcd.log" 2>&1 &
  echo $! >"$DIR/etcd.pid"

  "$apiserver" \
    --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 \
    --secure-port="$API_PORT" --insecure-port=0 \
    --endpoint-reconciler-type=none \
    --cert-dir="$DIR/pki" \
    --tls-cert-file="$DIR/pki/apiserver.crt" --tls-private-key-file="$DIR/pki/apiserver.key" \
    --client-ca-file="$DIR/pki/ca.crt" \
    --token-auth-file="$DIR/tokens.csv" \
    --authorization-mode=RBAC \
    --service-account-key-file="$DIR/pki/sa.pub" \
    --service-account-signing-key-file="$DIR/pki/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc \
    --service-cluster-ip-range=10.0.0.0/24 \
    --disable-admission-plugins=ServiceAccount \
    --admission-control-config-file="$DIR/admission-config.yaml" \
    --audit-policy-file="$DIR/audit-policy.yaml" --audit-log-path="$DIR/audit.log" \
    --audit-log-maxsize=200 --audit-log-maxbackup=1 \
    --profiling=false \
    </dev/null >"$DIR/kube-apiserver.log" 2>&1 &
  echo $! >"$DIR/kube-apiserver.pid"

  if [ -n "${GG_CLUSTER_OWNER_PID:-}" ]; then
    "$SELF" watchdog "$DIR" "$GG_CLUSTER_OWNER_PID" </dev/null >/dev/null 2>>"$DIR/watchdog.log" &
    echo $! >"$DIR/watchdog.pid"
  fi

  local started=$SECONDS
  until admin_kubectl get --raw=/readyz >/dev/null 2>&1; do
    alive "$(pid_of etcd)" || fail_up "etcd exited"
    alive "$(pid_of kube-apiserver)" || fail_up "kube-apiserver exited"
    if ((SECONDS - started >= READY_TIMEOUT)); then
      fail_up "kube-apiserver not ready after ${READY_TIMEOUT}s (https://127.0.0.1:$API_PORT/readyz)"
    fi
    sleep 0.2
  done

  admin_kubectl apply -f - >/dev/null <<'RBAC' || fail_up "could not create the RBAC bindings"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: local-cluster:developers
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: ana}
- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: developers}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: local-cluster:ci-bot
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: ci-bot}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: local-cluster:service-accounts
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: "system:serviceaccounts"}
RBAC
  # The apiserver creates kube-system a moment after it is ready.
  until admin_kubectl label namespace kube-system --overwrite \
    kubernetes.io/metadata.name=kube-system >/dev/null 2>&1; do
    ((SECONDS - started < READY_TIMEOUT)) || fail_up "namespace kube-system never appeared"
    sleep 0.2
  done

  {
    printf 'export KUBECONFIG=%q\n' "$DIR/admin.kubeconfig"
    printf 'export GG_APISERVER=%q\n' "https://127.0.0.1:$API_PORT"
    printf 'export GG_CA=%q\n' "$DIR/pki/ca.crt"
  } >"$DIR/env"
  trap - EXIT INT TERM
}

down() {
  [ -e "$DIR" ] || return 0
  DIR="$(cd "$DIR" && pwd)"
  [ -f "$DIR/$MARKER" ] || die "$DIR was not made by '$0 up'; refusing to touch it"
  stop_all || die "some processes of $DIR would not stop; left $DIR in place"
  rm -rf "$DIR"
}

# watchdog DIR OWNER_PID: runs `down DIR` once OWNER_PID is gone. Ctrl-C is the owner's business.
watchdog() {
  local owner="$1"
  trap '' INT HUP
  mkfifo "$DIR/watchdog.fifo"
  exec 9<>"$DIR/watchdog.fifo" # `read -t` on it is a sleep without a child process
  while alive "$owner"; do
    read -r -t 1 -u 9 _ || true
  done
  exec 9>&-
  rm -f "$DIR/watchdog.pid"
  exec "$SELF" down "$DIR"
}

[ $# -ge 2 ] || usage
DIR="$2"
[ -n "$DIR" ] || usage
case "$1" in
  up) [ $# -eq 2 ] || usage; up ;;
  down) [ $# -eq 2 ] || usage; down ;;
  watchdog) [ $# -eq 3 ] || usage; watchdog "$3" ;;
  *) usage ;;
esac
