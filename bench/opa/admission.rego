# The peer of posture's webhook in bench/webhook_vs_opa.sh: OPA serving an equivalent
# admission policy (LoadBalancer and NodePort Services denied, privileged containers
# denied) as an AdmissionReview endpoint. POST / evaluates data.system.main with the
# request body as input, the way OPA is deployed as a Kubernetes admission controller.
package system

main := {
	"apiVersion": "admission.k8s.io/v1",
	"kind": "AdmissionReview",
	"response": response,
}

default uid := ""

uid := input.request.uid

response := {"uid": uid, "allowed": true} if count(deny) == 0

response := {
	"uid": uid,
	"allowed": false,
	"status": {"code": 403, "reason": "Forbidden", "message": concat("; ", deny)},
} if count(deny) > 0

kind := input.request.kind.kind

deny contains msg if {
	kind == "Service"
	input.request.object.spec.type == "LoadBalancer"
	msg := sprintf("Service %s is exposed through a LoadBalancer", [input.request.object.metadata.name])
}

deny contains msg if {
	kind == "Service"
	input.request.object.spec.type == "NodePort"
	msg := sprintf("Service %s is exposed on every node through a NodePort", [input.request.object.metadata.name])
}

deny contains msg if {
	some container in containers
	container.securityContext.privileged == true
	msg := sprintf("%s %s runs the privileged container %s", [kind, input.request.object.metadata.name, container.name])
}

pod_spec := input.request.object.spec if kind == "Pod"

pod_spec := input.request.object.spec.template.spec if kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}

pod_spec := input.request.object.spec.jobTemplate.spec.template.spec if kind == "CronJob"

containers contains c if some c in pod_spec.containers

containers contains c if some c in pod_spec.initContainers
