#!/usr/bin/env bash
# make demo: the product on a local control plane, from a cached build in under a minute.
#
#   scripts/demo.sh up   TARGET_DIR DEV_DIR PYTHON   # what `make demo` runs
#   scripts/demo.sh down TARGET_DIR DEV_DIR PYTHON   # what `make demo-down` runs
#
# up: starts the control plane and test kubelet (make cluster-up), a moto server seeded
# with the demo AWS account (examples/aws), applies the demo estate (examples/estate,
# examples/aws/workloads.yaml), installs the Helm chart (operator, webhook, collector
# Job), waits for the first findings, prints them and the tagged workloads, and shows
# the webhook denying a change.
set -euo pipefail
cd "$(dirname "$0")/.."
action=$1 target=$2 dev=$3 python=$4
ns=posture-system
started=$(date +%s.%N)

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
elapsed() { python3 -c "import sys,time; print(f'{time.time()-float(sys.argv[1]):.0f} s')" "$started"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
moto_running() { [ -f "$dev/moto.pid" ] && kill -0 "$(cat "$dev/moto.pid")" 2>/dev/null; }

if [ "$action" = down ]; then
  if moto_running; then kill "$(cat "$dev/moto.pid")"; echo "moto stopped"; fi
  rm -f "$dev/moto.pid"
  e2e/cluster.sh down "" "$dev"
  exit 0
fi

say "control plane and test kubelet"
e2e/cluster.sh up "$target/debug/posture-cluster" "$dev"
export KUBECONFIG=$PWD/$dev/kubeconfig PATH=$PWD/$dev/bin:$PATH

say "moto, seeded with the demo AWS account 123456789012"
if ! moto_running; then
  port=$(free_port)
  setsid nohup "$python" -m moto.server -H 127.0.0.1 -p "$port" > "$dev/moto.log" 2>&1 < /dev/null &
  echo $! > "$dev/moto.pid"
  echo "$port" > "$dev/moto.port"
  for _ in $(seq 1 100); do
    python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',int(sys.argv[1])),1)" "$port" 2>/dev/null && break
    sleep 0.1
  done
  "$python" examples/aws/seed.py "http://127.0.0.1:$port" > /dev/null
fi
moto="http://127.0.0.1:$(cat "$dev/moto.port")"
echo "moto at $moto"

say "the demo estate (examples/estate, examples/aws/workloads.yaml)"
kubectl apply -f examples/estate/00-namespaces.yaml > /dev/null
kubectl apply -f examples/estate/ -f examples/aws/workloads.yaml

say "posture, installed with its Helm chart"
api=$(free_port) metrics=$(free_port) hook=$(free_port) hook_metrics=$(free_port)
helm upgrade --install posture charts/posture --namespace "$ns" --create-namespace \
  --values examples/demo-values.yaml \
  --set "operator.apiPort=$api,operator.metricsPort=$metrics,operator.apiURL=https://127.0.0.1:$api" \
  --set "webhook.port=$hook,webhook.metricsPort=$hook_metrics" \
  --set "collector.env.AWS_ENDPOINT_URL=$moto" \
  --wait --timeout 120s > "$dev/helm.log" || { cat "$dev/helm.log" >&2; exit 1; }
kubectl get pods -n "$ns"

say "waiting for the first evaluation and the AWS collection"
for _ in $(seq 1 120); do
  rules=$(kubectl get findings -A -o jsonpath='{.items[*].spec.rule}' 2>/dev/null || true)
  case "$rules" in *aws-irsa-privileged-role*) case "$rules" in *public-loadbalancer*) break ;; esac ;; esac
  sleep 0.5
done
# Tags follow the findings within a batch.
for _ in $(seq 1 40); do
  [ -n "$(kubectl get deploy -A -l posture.dev/HighlyPermissiveRole=true -o name 2>/dev/null)" ] && break
  sleep 0.5
done
echo "first findings after $(elapsed)"

say "kubectl get scanpolicy -A"
kubectl get scanpolicy -A

say "kubectl get findings -A -l 'posture.dev/severity in (Critical,High)'"
kubectl get findings -A -l 'posture.dev/severity in (Critical,High)' --sort-by=.spec.severity
echo "($(kubectl get findings -A --no-headers | wc -l) findings in all: kubectl get findings -A)"

say "tagged workloads"
for tag in isPublic HighlyPermissiveRole Privileged SensitiveData; do
  echo "-- posture.dev/$tag=true"
  kubectl get deploy,daemonset,configmap -A -l "posture.dev/$tag=true" --no-headers 2>/dev/null | awk '{print "   " $1 "  " $2}' || true
done

say "the webhook at work: a LoadBalancer for the clean catalog Deployment"
echo "\$ kubectl apply -f examples/denied/catalog-public.yaml"
if kubectl apply -f examples/denied/catalog-public.yaml; then
  echo "unexpected: the change was admitted" >&2
  exit 1
fi

say "ready ($(elapsed))"
cat <<EOT
Point kubectl at it:
  export KUBECONFIG=$PWD/$dev/kubeconfig PATH=$PWD/$dev/bin:\$PATH
  kubectl get findings -A
  kubectl get scanpolicy -n $ns default -o yaml          # status: counts, cloud collection
  kubectl get deploy -A -l posture.dev/isPublic=true
Query the inventory (the operator's endpoint, RBAC-guarded):
  kubectl create serviceaccount analyst -n $ns
  kubectl create clusterrolebinding analyst --clusterrole=posture-inventory-reader --serviceaccount=$ns:analyst
  kubectl get secret -n $ns posture-operator-tls -o jsonpath='{.data.ca\.crt}' | base64 -d > $dev/ca.crt
  $target/debug/posture query --server https://127.0.0.1:$api --ca $dev/ca.crt \\
    --token-file <(kubectl create token analyst -n $ns) "SELECT tag, count(*) FROM tags GROUP BY tag"
Stop it:
  make demo-down
EOT
