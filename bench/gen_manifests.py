#!/usr/bin/env python3
"""Writes a corpus of realistic Kubernetes manifests for the scan benchmark.

Usage: gen_manifests.py OUT_DIR [COUNT]   (default 5000 files)

Each file is one application as teams commit it: a Deployment, StatefulSet or CronJob,
usually a Service, sometimes an Ingress, a ServiceAccount with a RoleBinding, a
ConfigMap. Settings vary the way real estates do: some hardened, some not, a few
public load balancers, NodePorts on risky ports, privileged agents, wide RBAC.
Deterministic: the same COUNT gives the same files.
"""
import os
import random
import sys

out, count = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 5000
rng = random.Random(20261203)
os.makedirs(out, exist_ok=True)

HARDENED = """      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        seccompProfile: {{type: RuntimeDefault}}
      automountServiceAccountToken: false
      containers:
        - name: {name}
          image: registry.example.com/{team}/{name}:{version}@sha256:{digest}
          ports: [{{containerPort: 8080}}]
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {{drop: [ALL]}}
          resources:
            requests: {{cpu: 100m, memory: 128Mi}}
            limits: {{cpu: 500m, memory: 256Mi}}
          readinessProbe: {{httpGet: {{path: /healthz, port: 8080}}}}
"""

PLAIN = """      serviceAccountName: {name}
      containers:
        - name: {name}
          image: {registry}{team}/{name}:{tag}
          ports: [{{containerPort: 8080}}{hostport}]
          env:
            - {{name: LOG_LEVEL, value: info}}
            - {{name: DB_HOST, value: {name}-db.{team}.svc}}
          envFrom: [{{configMapRef: {{name: {name}-config}}}}]
{security}{volumes}"""


def workload(i, name, team, hardened):
    kind = rng.choices(["Deployment", "StatefulSet", "CronJob"], [80, 12, 8])[0]
    version = f"{rng.randint(1, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}"
    if hardened:
        pod = HARDENED.format(name=name, team=team, version=version, digest="%064x" % rng.getrandbits(256))
    else:
        privileged = i % 97 == 0
        security = "          securityContext: {privileged: true}\n" if privileged else ""
        volumes = ""
        if i % 211 == 0:
            volumes = "      volumes: [{name: docker, hostPath: {path: /var/run/docker.sock}}]\n"
        pod = PLAIN.format(
            name=name,
            team=team,
            registry=rng.choice(["", "docker.io/", "ghcr.io/"]),
            tag=rng.choice([version, version, "latest"]),
            hostport=", hostPort: 8080" if i % 151 == 0 else "",
            security=security,
            volumes=volumes,
        )
    labels = f"{{app: {name}, team: {team}}}"
    if kind == "CronJob":
        return f"""apiVersion: batch/v1
kind: CronJob
metadata: {{name: {name}, namespace: {team}}}
spec:
  schedule: "{rng.randint(0, 59)} {rng.randint(0, 23)} * * *"
  jobTemplate:
    spec:
      template:
        metadata: {{labels: {labels}}}
        spec:
          restartPolicy: OnFailure
""" + "\n".join("    " + line if line else line for line in pod.splitlines()) + "\n"
    extra = f"  serviceName: {name}\n" if kind == "StatefulSet" else ""
    return f"""apiVersion: apps/v1
kind: {kind}
metadata:
  name: {name}
  namespace: {team}
  labels: {labels}
spec:
{extra}  replicas: {rng.randint(1, 6)}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {labels}}}
    spec:
{pod}"""


for i in range(count):
    team = f"team-{i % 60:02d}"
    name = f"svc-{i:05d}"
    hardened = rng.random() < 0.35
    docs = [workload(i, name, team, hardened)]
    kind = rng.choices(["ClusterIP", "LoadBalancer", "NodePort"], [85, 10, 5])[0]
    port = 22 if kind == "NodePort" and i % 3 == 0 else rng.choice([80, 443, 8080, 6379])
    annotations = "\n  annotations: {service.beta.kubernetes.io/aws-load-balancer-scheme: internal}" if kind == "LoadBalancer" and rng.random() < 0.4 else ""
    docs.append(f"""apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: {team}{annotations}
spec:
  type: {kind}
  selector: {{app: {name}}}
  ports: [{{port: {port}, targetPort: 8080}}]
""")
    if rng.random() < 0.2:
        docs.append(f"""apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {name}, namespace: {team}}}
spec:
  tls: [{{hosts: [{name}.example.com], secretName: {name}-tls}}]
  rules:
    - host: {name}.example.com
      http:
        paths:
          - {{path: /, pathType: Prefix, backend: {{service: {{name: {name}, port: {{number: {port}}}}}}}}}
""")
    if not hardened:
        role = rng.choices(["view", "edit", "cluster-admin"], [85, 13, 2])[0]
        binding = "ClusterRoleBinding" if role == "cluster-admin" else "RoleBinding"
        ns_line = "" if binding == "ClusterRoleBinding" else f", namespace: {team}"
        docs.append(f"""apiVersion: v1
kind: ServiceAccount
metadata: {{name: {name}, namespace: {team}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: {binding}
metadata: {{name: {name}-{role}{ns_line}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {role}}}
subjects: [{{kind: ServiceAccount, name: {name}, namespace: {team}}}]
""")
        docs.append(f"""apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}-config, namespace: {team}}}
data:
  FEATURE_FLAGS: "search,checkout,recommendations"
  CACHE_TTL: "{rng.randint(30, 600)}"
""")
    with open(os.path.join(out, f"{name}.yaml"), "w") as handle:
        handle.write("---\n".join(docs))
print(f"wrote {count} manifests to {out}")
