#!/usr/bin/env bash
# The built-in local stack: Temporal dev server (+ Web UI), a Kubernetes control plane
# (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, KWOK with a fake node)
# and MariaDB. Every process runs from the binaries build.sh caches, with its state,
# pid file and log under $NW_STACK_DIR (default: .stack/ in the repository).
#
#   stack.sh start    build what is missing, start what is not running, print where things are
#   stack.sh status   one line per component; exit 1 when any is down
#   stack.sh stop     stop every component this stack started; leaves no process behind
#   stack.sh env      print the environment variables that point nightwatch at this stack
#   stack.sh build    only build (or verify the cache of) the binaries
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$here/lib.sh"
source "$here/versions.env"

STACK_DIR=${NW_STACK_DIR:-$repo/.stack}
TEMPORAL_PORT=${NW_TEMPORAL_PORT:-7233}
TEMPORAL_UI_PORT=${NW_TEMPORAL_UI_PORT:-8233}
ETCD_PORT=${NW_ETCD_PORT:-2379}
ETCD_PEER_PORT=${NW_ETCD_PEER_PORT:-2380}
KUBE_API_PORT=${NW_KUBE_API_PORT:-6443}
KCM_PORT=${NW_KCM_PORT:-10257}
SCHEDULER_PORT=${NW_SCHEDULER_PORT:-10259}
MYSQL_HOST=${NW_MYSQL_HOST:-127.0.0.1}
MYSQL_PORT=${NW_MYSQL_PORT:-3306}
FAKE_NODES=${NW_FAKE_NODES:-2}

LOGS=$STACK_DIR/logs RUN=$STACK_DIR/run DATA=$STACK_DIR/data PKI=$STACK_DIR/pki
KUBECONFIG_PATH=$STACK_DIR/kubeconfig
COMPONENTS="etcd kube-apiserver kube-controller-manager kube-scheduler kwok temporal"

bin() { # component → binary path
  case $1 in
    etcd) echo "$(bin_dir etcd "$ETCD_VERSION")/etcd" ;;
    kwok) echo "$(bin_dir kwok "$KWOK_VERSION")/kwok" ;;
    temporal) echo "$(bin_dir temporal "$TEMPORAL_CLI_VERSION")/temporal" ;;
    kube-*) echo "$(bin_dir kubernetes "$KUBERNETES_VERSION")/$1" ;;
  esac
}
port_var() { # component → "NAME=port ..." it listens on
  case $1 in
    etcd) echo "NW_ETCD_PORT=$ETCD_PORT NW_ETCD_PEER_PORT=$ETCD_PEER_PORT" ;;
    kube-apiserver) echo "NW_KUBE_API_PORT=$KUBE_API_PORT" ;;
    kube-controller-manager) echo "NW_KCM_PORT=$KCM_PORT" ;;
    kube-scheduler) echo "NW_SCHEDULER_PORT=$SCHEDULER_PORT" ;;
    temporal) echo "NW_TEMPORAL_PORT=$TEMPORAL_PORT NW_TEMPORAL_UI_PORT=$TEMPORAL_UI_PORT" ;;
    *) echo "" ;;
  esac
}

# A component killed from outside can linger as a zombie (nobody reaps it), which kill -0 still finds.
pid_of() {
  local f=$RUN/$1.pid p
  [ -f "$f" ] || return 1
  p=$(cat "$f")
  kill -0 "$p" 2>/dev/null && [ "$(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null)" != Z ] && echo "$p"
}
running() { pid_of "$1" >/dev/null; }
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
token() { cat "$PKI/token"; }
kube() { # method path [json]: call the local API server with the admin token
  local args=(-sSf --cacert "$PKI/apiserver.crt" -H "Authorization: Bearer $(token)" -X "$1" "https://127.0.0.1:$KUBE_API_PORT$2")
  [ $# -ge 3 ] && args+=(-H 'Content-Type: application/json' -d "$3")
  curl "${args[@]}"
}

# wait_for NAME SECONDS CMD...: poll CMD until it succeeds; on time-out show the log tail.
wait_for() {
  local name=$1 limit=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if ! running "$name"; then tail -n 20 "$LOGS/$name.log" >&2; die "$name exited during start-up; full log: $LOGS/$name.log"; fi
    if [ $SECONDS -ge $deadline ]; then tail -n 20 "$LOGS/$name.log" >&2; die "$name did not become ready within ${limit}s; log: $LOGS/$name.log"; fi
    sleep 0.2
  done
}

launch() { # component args...: start detached in its own session (so stop can end the whole group)
  local name=$1; shift
  local port v
  for v in $(port_var "$name"); do
    port=${v#*=}
    port_open 127.0.0.1 "$port" && die "port $port for $name is taken by another process; free it or set ${v%%=*} to another port"
  done
  : >"$LOGS/$name.log"
  setsid "$(bin "$name")" "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}

ensure_pki() {
  [ -f "$PKI/token" ] && [ -f "$PKI/sa.key" ] && [ -f "$PKI/apiserver.crt" ] && return
  command -v openssl >/dev/null || die "'openssl' is needed to make the local cluster's keys; apt-get install openssl"
  mkdir -p "$PKI"
  openssl rand -hex 24 >"$PKI/token"
  printf '%s,nightwatch-admin,nightwatch-admin,"system:masters"\n' "$(token)" >"$PKI/tokens.csv"
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  # The API server's serving certificate: self-signed, valid for the loopback names.
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=nightwatch-local-apiserver" \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc" \
    -keyout "$PKI/apiserver.key" -out "$PKI/apiserver.crt" 2>/dev/null
}

write_kubeconfig() {
  cat >"$KUBECONFIG_PATH" <<KC
apiVersion: v1
kind: Config
clusters:
- name: nightwatch-local
  cluster:
    server: https://127.0.0.1:$KUBE_API_PORT
    certificate-authority-data: $(base64 -w0 "$PKI/apiserver.crt")
users:
- name: nightwatch-admin
  user:
    token: $(token)
contexts:
- name: nightwatch-local
  context: {cluster: nightwatch-local, user: nightwatch-admin}
current-context: nightwatch-local
KC
  chmod 600 "$KUBECONFIG_PATH"
}

start_etcd() {
  launch etcd --name default --data-dir "$DATA/etcd" --unsafe-no-fsync \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "default=http://127.0.0.1:$ETCD_PEER_PORT" --log-level warn
}
start_apiserver() {
  launch kube-apiserver --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$KUBE_API_PORT" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --token-auth-file "$PKI/tokens.csv" --authorization-mode RBAC --anonymous-auth=false \
    --service-account-issuer https://kubernetes.default.svc --service-account-key-file "$PKI/sa.pub" \
    --service-account-signing-key-file "$PKI/sa.key" --service-cluster-ip-range 10.96.0.0/16 \
    --endpoint-reconciler-type none --enable-priority-and-fairness=false --v 0
}
# Client-side rate limits (defaults: 20 QPS for the controller manager, 50 for the scheduler)
# capped the local cluster at ~4 Jobs a second; raised, 200 two-second Jobs complete in ~7 s.
start_controller_manager() {
  launch kube-controller-manager --kubeconfig "$KUBECONFIG_PATH" --leader-elect=false \
    --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --root-ca-file "$PKI/apiserver.crt" \
    --service-account-private-key-file "$PKI/sa.key" --use-service-account-credentials=false \
    --controllers '*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-route' \
    --concurrent-job-syncs 20 --kube-api-qps 200 --kube-api-burst 400 --v 0
}
start_scheduler() {
  launch kube-scheduler --kubeconfig "$KUBECONFIG_PATH" --leader-elect=false \
    --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" --kube-api-qps 200 --kube-api-burst 400 --v 0
}
start_kwok() {
  launch kwok --kubeconfig "$KUBECONFIG_PATH" --config "$here/kwok-stages.yaml" --manage-all-nodes=true \
    --node-ip 10.0.0.1 --cidr 10.244.0.0/16
}
# The dev server has one history shard on one SQLite connection, so every write of every workflow
# queues behind the previous one. Tuned as Temporal's own SDK stress runs tune it (README, "The local
# stack" says what each setting bought): SQLite in WAL mode without fsync per commit, a mutable-state
# cache larger than the number of open workflows so none is reloaded from disk, and one task-queue
# partition (the default four leave a worker's few pollers waiting on empty partitions while tasks
# queue in another). A real cluster needs none of this: many shards (numHistoryShards 512+, fixed at
# creation) on MySQL/PostgreSQL/Cassandra with durability on, and partitions sized to its pollers.
start_temporal() {
  launch temporal server start-dev --ip 127.0.0.1 --port "$TEMPORAL_PORT" --ui-port "$TEMPORAL_UI_PORT" \
    --db-filename "$DATA/temporal.db" --log-level warn \
    --sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=off \
    --dynamic-config-value history.hostLevelCacheMaxSize=20000 \
    --dynamic-config-value matching.numTaskqueueReadPartitions=1 \
    --dynamic-config-value matching.numTaskqueueWritePartitions=1 \
    ${NW_TEMPORAL_EXTRA_ARGS:-}
}

ensure_cluster_objects() {
  local i
  for i in $(seq 1 "$FAKE_NODES"); do
    kube GET "/api/v1/nodes/kwok-node-$i" >/dev/null 2>&1 ||
      kube POST /api/v1/nodes "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"kwok-node-$i\",\"annotations\":{\"kwok.x-k8s.io/node\":\"fake\"},\"labels\":{\"type\":\"kwok\",\"kubernetes.io/hostname\":\"kwok-node-$i\"}}}" >/dev/null
  done
  # The namespace of the classic demo task demo-task-2.
  kube GET /api/v1/namespaces/demo >/dev/null 2>&1 ||
    kube POST /api/v1/namespaces '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"demo"}}' >/dev/null
}
nodes_ready() { # every fake node Ready, and the not-ready taint lifted by the node lifecycle controller
  local nodes; nodes=$(kube GET /api/v1/nodes) || return 1
  [ "$(grep -A1 '"type": "Ready"' <<<"$nodes" | grep -c '"status": "True"')" -ge "$FAKE_NODES" ] && ! grep -q 'node.kubernetes.io/not-ready' <<<"$nodes"
}
default_sa() { kube GET /api/v1/namespaces/default/serviceaccounts/default | grep -q '"kind": "ServiceAccount"'; }

mariadb_up() {
  port_open "$MYSQL_HOST" "$MYSQL_PORT" && return
  [ "$MYSQL_HOST" = 127.0.0.1 ] || die "MariaDB at $MYSQL_HOST:$MYSQL_PORT does not answer (NW_MYSQL_HOST/NW_MYSQL_PORT)"
  if ! command -v mariadbd >/dev/null && [ ! -x /usr/sbin/mariadbd ]; then
    log "MariaDB: not installed; installing Debian's mariadb-server…"
    [ "$(id -u)" = 0 ] || die "MariaDB is not running and not installed; run as root or install mariadb-server"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q mariadb-server >"$LOGS/mariadb-install.log" 2>&1 ||
      { apt-get update -q >>"$LOGS/mariadb-install.log" 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q mariadb-server >>"$LOGS/mariadb-install.log" 2>&1; } ||
      die "could not install mariadb-server; see $LOGS/mariadb-install.log"
  fi
  log "MariaDB: starting the system server on port $MYSQL_PORT…"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --port "$MYSQL_PORT" --bind-address 127.0.0.1
  local deadline=$((SECONDS + 30))
  until port_open 127.0.0.1 "$MYSQL_PORT"; do [ $SECONDS -lt $deadline ] || die "MariaDB did not start; see /var/log/mysql"; sleep 0.5; done
  # A fresh Debian install lets root in only over the socket; nightwatch's default URL uses TCP with no password.
  mariadb -uroot -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('')" 2>/dev/null || true
}

cmd_start() {
  mkdir -p "$LOGS" "$RUN" "$DATA"
  local t0=$SECONDS all=1 c
  for c in $COMPONENTS; do running "$c" || all=0; done
  if [ $all = 1 ] && port_open "$MYSQL_HOST" "$MYSQL_PORT"; then log "already running"; summary; return; fi
  bash "$here/build.sh"
  local t_start=$SECONDS
  ensure_pki; write_kubeconfig
  running temporal || start_temporal
  running etcd || start_etcd
  mariadb_up
  wait_for etcd 30 curl -sf "http://127.0.0.1:$ETCD_PORT/health"
  running kube-apiserver || start_apiserver
  wait_for kube-apiserver 60 kube GET /readyz
  running kube-controller-manager || start_controller_manager
  running kube-scheduler || start_scheduler
  running kwok || start_kwok
  ensure_cluster_objects
  wait_for kube-controller-manager 60 curl -skf "https://127.0.0.1:$KCM_PORT/healthz"
  wait_for kube-scheduler 60 curl -skf "https://127.0.0.1:$SCHEDULER_PORT/healthz"
  wait_for kwok 60 nodes_ready
  wait_for kube-controller-manager 60 default_sa
  wait_for temporal 60 "$(bin temporal)" operator cluster health --address "127.0.0.1:$TEMPORAL_PORT"
  wait_for temporal 30 curl -sf "http://127.0.0.1:$TEMPORAL_UI_PORT/"
  log "started in $((SECONDS - t_start)) s ($((SECONDS - t0)) s with the build check)"
  summary
}

cmd_status() {
  local c pid bad=0
  for c in $COMPONENTS; do
    if pid=$(pid_of "$c"); then printf '%-24s running (pid %s)\n' "$c" "$pid"; else printf '%-24s stopped\n' "$c"; bad=1; fi
  done
  if port_open "$MYSQL_HOST" "$MYSQL_PORT"; then printf '%-24s answering on %s:%s\n' mariadb "$MYSQL_HOST" "$MYSQL_PORT"; else printf '%-24s not answering on %s:%s\n' mariadb "$MYSQL_HOST" "$MYSQL_PORT"; bad=1; fi
  return $bad
}

stop_one() { # component: SIGTERM its process group, SIGKILL it after 10 s
  local c=$1 pid
  pid=$(pid_of "$c") || { rm -f "$RUN/$c.pid"; return; }
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 10))
  while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    log "$c did not stop on SIGTERM within 10 s; killing it"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$RUN/$c.pid"
}

cmd_stop() {
  # Clients before servers: the API server shuts down cleanly only while etcd is still there.
  stop_one kwok & stop_one kube-scheduler & stop_one kube-controller-manager & stop_one temporal & wait
  stop_one kube-apiserver
  stop_one etcd
  log "stopped (MariaDB is the machine's own server and is left running)"
}

cmd_env() {
  cat <<ENV
export KUBECONFIG=$KUBECONFIG_PATH
export TEMPORAL_ADDRESS=127.0.0.1:$TEMPORAL_PORT
export TEMPORAL_UI_URL=http://127.0.0.1:$TEMPORAL_UI_PORT
export DATABASE_URL=\${DATABASE_URL:-mysql://root@$MYSQL_HOST:$MYSQL_PORT/nightwatch}
export NIGHTWATCH_TEMPORAL_CLI=$(bin temporal)
# Tasks on the local cluster may set KWOK's test knobs (kwok-stages.yaml), and only those.
export POD_ANNOTATIONS_ALLOWED="\${POD_ANNOTATIONS_ALLOWED:-nightwatch.io/kwok-*}"
ENV
}

summary() {
  cat <<SUM

nightwatch local stack
  Temporal gRPC     127.0.0.1:$TEMPORAL_PORT   (namespace default)
  Temporal Web UI   http://127.0.0.1:$TEMPORAL_UI_PORT
  Kubernetes API    https://127.0.0.1:$KUBE_API_PORT   (Kubernetes $KUBERNETES_VERSION, $FAKE_NODES KWOK nodes)
  kubeconfig        $KUBECONFIG_PATH
  MariaDB           $MYSQL_HOST:$MYSQL_PORT
  logs              $LOGS
SUM
}

case ${1:-} in
  start) cmd_start ;;
  status) cmd_status ;;
  stop) cmd_stop ;;
  env) cmd_env ;;
  build) bash "$here/build.sh" ;;
  *) echo "usage: $0 start|status|stop|env|build" >&2; exit 2 ;;
esac
