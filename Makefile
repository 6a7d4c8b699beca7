# posture — the two commands a new user needs are `make test` and (from the demo issue
# on) `make demo`. The rest serve development.
#
# Build caches may live outside the clone: set CARGO_TARGET_DIR (CI uses
# $HOME/.cache/posture/target) and POSTURE_CACHE (control-plane binaries, default
# $HOME/.cache/posture).

CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
DEV := $(CURDIR)/.dev
POSTURE_CACHE ?= $(HOME)/.cache/posture
VENV := $(POSTURE_CACHE)/venv
export POSTURE_PYTHON := $(VENV)/bin/python

.PHONY: all build controlplane pyenv test unit e2e cluster-up cluster-down demo demo-down musl image fmt lint bench-controlplane

all: build

## build: the posture binary, the e2e harness and every test target
build:
	$(CARGO) build --workspace --all-targets

## controlplane: etcd, kube-apiserver, controller-manager, scheduler, kubectl and helm
## from the Go module proxy (first build ~10 min; cached afterwards)
controlplane:
	e2e/controlplane/build.sh

## pyenv: Python tools the tests use (SARIF schema validation), in a venv
pyenv: $(VENV)/.installed
$(VENV)/.installed: tests/tools/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/tools/requirements.txt
	touch $@

## test: unit, integration and end-to-end tests
test: controlplane pyenv build
	$(CARGO) test --workspace

## unit: tests that need no control plane
unit:
	$(CARGO) test --workspace --exclude posture-e2e
	$(CARGO) test -p posture-e2e --lib

## e2e: end-to-end tests on the local control plane (or POSTURE_E2E_KUBECONFIG's cluster)
e2e: controlplane
	$(CARGO) build --bin posture
	$(CARGO) test -p posture-e2e

## cluster-up: control plane + test kubelet in the background; kubeconfig in .dev/kubeconfig
cluster-up: controlplane
	$(CARGO) build --bin posture
	$(CARGO) build -p posture-e2e --bin posture-cluster
	e2e/cluster.sh up "$(TARGET_DIR)/debug/posture-cluster" "$(DEV)"

## cluster-down: stop what cluster-up started
cluster-down:
	e2e/cluster.sh down "" "$(DEV)"

## demo: the product on a local control plane: the chart installed, a demo AWS account
## in moto, the demo estate, findings, tags and a denial (make demo-down stops it)
demo: controlplane pyenv
	$(CARGO) build -p posture --bin posture -p posture-e2e --bin posture-cluster
	scripts/demo.sh up "$(TARGET_DIR)" .dev "$(POSTURE_PYTHON)"

demo-down:
	scripts/demo.sh down "$(TARGET_DIR)" .dev "$(POSTURE_PYTHON)"

## musl: the static binary the image ships (rustup target x86_64-unknown-linux-musl,
## Debian package musl-tools)
musl:
	$(CARGO) build --release --target x86_64-unknown-linux-musl -p posture --bin posture
	@file "$(TARGET_DIR)/x86_64-unknown-linux-musl/release/posture" 2>/dev/null || ls -l "$(TARGET_DIR)/x86_64-unknown-linux-musl/release/posture"

## image: the container image (needs a Docker engine; this machine has none)
image:
	docker build -t posture:dev .

## bench-controlplane: median time from cached binaries to /readyz
bench-controlplane: controlplane
	$(CARGO) build -p posture-e2e --bin posture-cluster
	"$(TARGET_DIR)/debug/posture-cluster" bench --runs 7

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
