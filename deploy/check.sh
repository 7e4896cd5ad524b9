#!/usr/bin/env bash
# Offline checks of Dockerfile, docker-compose.yml and deploy/ (see deploy/README.md).
#   bash deploy/check.sh            # from anywhere; exits non-zero on the first failing step
# Installs its Python tools (pinned in deploy/requirements-tools.txt) into
# .orderguard/deploy-tools/ on first use. Steps needing kubectl are skipped, loudly, without it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TOOLS="$ROOT/.orderguard/deploy-tools"
REQS="deploy/requirements-tools.txt"
RENDERED="$TOOLS/rendered"
K8S_VERSION="1.31.0"
OVERLAYS=(base overlays/dev overlays/prod)
KUBECTL="${KUBECTL:-kubectl}"
PROMTOOL="${PROMTOOL:-promtool}"

current=""
step() { current="$*"; printf '\n==> %s\n' "$*"; }
passed=0
skipped=0
ok() { passed=$((passed + 1)); }
# The closing line has the 'N passed, N failed' form that CI reads.
on_exit() {
  local rc=$?
  if [[ $rc -ne 0 ]]; then
    printf '\nFAILED: %s\ndeploy: %d passed, 1 failed, %d skipped\n' "$current" "$passed" "$skipped"
  fi
}
trap on_exit EXIT

# ---- tools ----------------------------------------------------------------------
stamp="$TOOLS/.requirements.sha256"
want="$(sha256sum "$REQS" | cut -d' ' -f1)"
if [[ ! -x "$TOOLS/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  step "installing tools into $TOOLS"
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQS"
  echo "$want" > "$stamp"
fi
export PATH="$TOOLS/bin:$PATH"

# ---- this script ------------------------------------------------------------------
step "shellcheck deploy/check.sh"
shellcheck deploy/check.sh
ok

# ---- YAML and compose -----------------------------------------------------------
step "yamllint docker-compose.yml deploy/"
yamllint --strict -c deploy/.yamllint.yaml docker-compose.yml deploy/
ok

step "check-jsonschema (compose spec) docker-compose.yml"
check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
ok

# ---- Dockerfile -----------------------------------------------------------------
step "checkov --framework dockerfile Dockerfile"
checkov --framework dockerfile --skip-download --compact --quiet -f Dockerfile
ok

# ---- monitoring (deploy/monitoring) ---------------------------------------------
step "dashboards.py --check (dashboards, PrometheusRule and the Kubernetes copies up to date)"
python deploy/monitoring/dashboards.py --check
ok

if ! command -v "$PROMTOOL" >/dev/null 2>&1; then
  step "SKIPPED: promtool not found, so the alert rules were neither checked nor unit-tested"
  echo "    install it with the Debian package prometheus (CI does: .ci/run) to run"
  echo "    promtool check rules and promtool test rules (tests/deploy skips its own, except in CI)."
  skipped=$((skipped + 2))
else
  step "promtool check rules deploy/monitoring/alerts.yaml"
  "$PROMTOOL" check rules deploy/monitoring/alerts.yaml
  ok

  step "promtool test rules deploy/monitoring/alerts.test.yaml"
  "$PROMTOOL" test rules deploy/monitoring/alerts.test.yaml
  ok
fi

# ---- Kubernetes -----------------------------------------------------------------
if ! command -v "$KUBECTL" >/dev/null 2>&1; then
  step "SKIPPED: kubectl not found, so nothing under deploy/k8s was rendered or checked"
  echo "    install kubectl (it embeds kustomize) to run: kustomize build, kubernetes-validate,"
  echo "    custom-resource validation, checkov and the Secret dry run (tests/deploy skips its own)."
  skipped=$((skipped + ${#OVERLAYS[@]} * 4 + 1))
else
  mkdir -p "$RENDERED"
  for overlay in "${OVERLAYS[@]}"; do
    out="$RENDERED/$(basename "$overlay").yaml"
    step "kubectl kustomize deploy/k8s/$overlay"
    "$KUBECTL" kustomize "deploy/k8s/$overlay" > "$out"
    echo "    $(grep -c '^kind:' "$out") objects -> ${out#"$ROOT"/}"
    ok

    step "kubernetes-validate --strict -k $K8S_VERSION ($overlay)"
    # It skips custom resources (with a warning, hidden here): the next step validates them.
    kubernetes-validate --strict -k "$K8S_VERSION" --quiet --no-warn "$out"
    echo "    valid"
    ok

    step "custom resources ($overlay)"
    python deploy/validate_custom_resources.py "$out"
    ok

    step "checkov --framework kubernetes ($overlay)"
    skip=()
    if [[ "$overlay" == base ]]; then
      # base alone has no NetworkPolicy by design: they are the opt-in component
      # network-policies, which both overlays enable (checked there, and by tests/deploy).
      skip=(--skip-check CKV2_K8S_6)
    fi
    checkov --framework kubernetes --skip-download --compact --quiet "${skip[@]}" -f "$out"
    ok
  done

  step "kubectl create secret --dry-run=client from deploy/k8s/secrets.example.env"
  "$KUBECTL" create secret generic orderguard-secrets --namespace orderguard \
    --from-env-file=deploy/k8s/secrets.example.env --dry-run=client -o name
  ok
fi

# ---- cross-object checks (tests/deploy; the Kubernetes ones skip themselves without kubectl)
# With the project's own environment (orderguard importable) the KEDA triggers are also
# compared with the code's consumer groups; with the tools venv that one test is skipped
# and tests/conftest.py (which imports orderguard) is not loaded.
project_python="${ORDERGUARD_PYTHON:-$ROOT/.venv/bin/python}"
if [[ -x "$project_python" ]] && "$project_python" -c "import orderguard, pytest, yaml" 2>/dev/null; then
  step "pytest tests/deploy (project environment)"
  "$project_python" -m pytest -q -p no:cacheprovider tests/deploy
else
  step "pytest tests/deploy (tools venv; orderguard not installed, code comparison skipped)"
  python -m pytest -q -p no:cacheprovider -p no:cloudcoil --confcutdir=tests/deploy tests/deploy
fi
ok

printf '\ndeploy: %d passed, 0 failed, %d skipped\n' "$passed" "$skipped"
