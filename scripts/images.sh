#!/usr/bin/env bash
# Build the two images from the unchanged Dockerfiles: labelstack/backend:<version> and
# labelstack/operator:<version>, <version> being the chart's appVersion (what it deploys).
#
#   scripts/images.sh [backend] [operator]      (both when none is named; `make images`)
#
# The builder is the first of docker (with a running engine), buildah and podman that works, or
# LABELSTACK_BUILDER. buildah and podman build with chroot isolation (BUILDAH_ISOLATION changes
# it): it needs no container runtime, which a sandboxed machine may refuse (setrlimit). The bases are the Dockerfiles' own (CUDA and python:3.11-slim) when the
# builder can pull them; on a machine that cannot pull (LABELSTACK_BASE=local forces it), one
# Debian bookworm base with Python 3.11 is made from Debian's packages with debootstrap and
# passed as both BASE_IMAGE and PYTHON_IMAGE. The local base has no CUDA runtime of its own:
# torch's CUDA wheels are in the image either way, and the driver comes from the node.
#
# A pip index or find-links folder on local disk, and the CA bundle pip trusts (all from pip's
# configuration here), are mounted into the build and named to pip, for builders that can mount
# (podman, buildah): the pins CI tests may live only there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VERSION=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/labelstack/Chart.yaml)
LOCAL_BASE=${LABELSTACK_LOCAL_BASE:-localhost/labelstack/debian-python:bookworm}
log() { printf 'images: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

pick_builder() {
  if [[ -n ${LABELSTACK_BUILDER:-} ]]; then
    case $LABELSTACK_BUILDER in
      docker | podman | buildah) echo "$LABELSTACK_BUILDER" ;;
      *) die "LABELSTACK_BUILDER is '$LABELSTACK_BUILDER': docker, podman or buildah" ;;
    esac
  elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    echo docker
  elif command -v buildah >/dev/null; then
    echo buildah
  elif command -v podman >/dev/null && podman info >/dev/null 2>&1; then
    echo podman
  else
    die "no image builder: install Docker, podman or buildah (scripts/bootstrap.sh containers)"
  fi
}

# docker.io's short names, spelled out for podman and buildah (which may not search it).
qualified() {
  local image=$1 first=${1%%/*}
  if [[ $image != */* ]]; then
    echo "docker.io/library/$image"
  elif [[ $first != *.* && $first != *:* && $first != localhost ]]; then
    echo "docker.io/$image"
  else
    echo "$image"
  fi
}

# The default of `ARG <name>=` in a Dockerfile, with ${...} filled from the same file's ARGs.
dockerfile_default() {
  local file=$1 name=$2 value var
  value=$(sed -n "s/^ARG $name=//p" "$file" | head -n1)
  while [[ $value =~ \$\{([A-Z_]+)\} ]]; do
    var=${BASH_REMATCH[1]}
    value=${value//\$\{$var\}/$(sed -n "s/^ARG $var=//p" "$file" | head -n1)}
  done
  echo "$value"
}

image_present() {
  case $BUILDER in
    docker) docker image inspect "$1" >/dev/null 2>&1 ;;
    *) "$BUILDER" inspect --type image "$1" >/dev/null 2>&1 ;;
  esac
}

can_pull() {
  local image
  image=$(qualified "$1")
  image_present "$image" && return 0
  case $BUILDER in
    docker) timeout 300 docker pull -q "$image" >/dev/null 2>&1 ;;
    *) timeout 300 "$BUILDER" pull -q "$image" >/dev/null 2>&1 ;;
  esac
}

# The first Debian mirror apt is configured with here (deb822 or one-line sources).
apt_mirror() {
  local mirror
  mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [[ -n $mirror ]] || mirror=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [[ -n $mirror ]] || die "no Debian mirror in apt's sources; debootstrap needs one"
  echo "$mirror"
}

make_local_base() {
  if image_present "$LOCAL_BASE"; then
    log "using $LOCAL_BASE"
    return
  fi
  command -v debootstrap >/dev/null || die "no debootstrap to make the local base (scripts/bootstrap.sh containers)"
  [[ $(id -u) == 0 ]] || die "debootstrap needs root to make the local base"
  # Removed on any exit (a RETURN trap would outlive this function and fire in others).
  BASE_WORK=$(mktemp -d)
  trap 'rm -rf "$BASE_WORK"' EXIT
  local root=$BASE_WORK
  log "making $LOCAL_BASE with debootstrap (Debian bookworm, Python 3.11)"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$root/fs" "$(apt_mirror)" >"$root/debootstrap.log" 2>&1 \
    || { tail -n 20 "$root/debootstrap.log" >&2; die "debootstrap failed"; }
  # python:3.11-slim's `python`; apt's lists are fetched again by the Dockerfile's RUN.
  ln -s /usr/bin/python3 "$root/fs/usr/local/bin/python"
  rm -rf "$root"/fs/var/lib/apt/lists/* "$root"/fs/var/cache/apt/*.bin
  tar -C "$root/fs" -cf "$root/fs.tar" .
  case $BUILDER in
    docker) docker import --change 'CMD ["/bin/bash"]' "$root/fs.tar" "$LOCAL_BASE" >/dev/null ;;
    podman) podman import --change 'CMD ["/bin/bash"]' "$root/fs.tar" "$LOCAL_BASE" >/dev/null ;;
    buildah)
      local ctr
      ctr=$(buildah from scratch)
      buildah add --quiet "$ctr" "$root/fs.tar" /
      buildah config --cmd '["/bin/bash"]' "$ctr"
      buildah commit --quiet --rm "$ctr" "$LOCAL_BASE" >/dev/null
      ;;
  esac
  rm -rf "$root"
}

# Build arguments and mounts that hand pip's local indexes to the build (podman, buildah).
pip_local_indexes() {
  [[ $BUILDER == docker ]] && return
  command -v python3 >/dev/null || return 0
  local key value extra="" links="" cert="" item dir
  while IFS='=' read -r key value; do
    value=${value//\'/}
    case $key in
      *extra-index-url) for item in $value; do
          [[ $item == file://* ]] || continue
          extra+=" $item"
          # A PEP 503 folder (<root>/simple) links to files beside it: mount <root>.
          dir=$(dirname "${item#file://}")
          BUILD_ARGS+=(--volume "$dir:$dir:ro")
        done ;;
      *find-links) for item in $value; do
          item=${item#file://}
          [[ -d $item && " $links " != *" $item "* ]] || continue
          links+=" $item"
          BUILD_ARGS+=(--volume "$item:$item:ro")
        done ;;
      # A registry behind a TLS-inspecting proxy: pip's CA bundle, as the host trusts it.
      *.cert) [[ -f $value ]] && cert=$value ;;
    esac
  done < <(python3 -m pip config list 2>/dev/null)
  if [[ -n $cert ]]; then
    BUILD_ARGS+=(--volume "$cert:/run/labelstack-pip-ca.crt:ro" --build-arg "PIP_CERT=/run/labelstack-pip-ca.crt")
  fi
  [[ -n $extra ]] && BUILD_ARGS+=(--build-arg "PIP_EXTRA_INDEX_URL=${extra# }")
  [[ -n $links ]] && BUILD_ARGS+=(--build-arg "PIP_FIND_LINKS=${links# }")
  return 0
}

build() {
  local name=$1 tag="labelstack/$1:$VERSION" started=$SECONDS
  local args=("${BUILD_ARGS[@]}")
  [[ -n ${BASES[$name]:-} ]] && args+=(--build-arg "${BASES[$name]}")
  log "building $tag with $BUILDER"
  case $BUILDER in
    docker) docker build -f "Dockerfile.$name" -t "$tag" "${args[@]}" . ;;
    podman)
      podman build --isolation "${BUILDAH_ISOLATION:-chroot}" --format docker \
        -f "Dockerfile.$name" -t "$tag" "${args[@]}" .
      ;;
    buildah)
      buildah bud --isolation "${BUILDAH_ISOLATION:-chroot}" --format docker --layers \
        -f "Dockerfile.$name" -t "$tag" "${args[@]}" .
      ;;
  esac
  log "built $tag in $((SECONDS - started)) s"
}

main() {
  local targets=("$@") target base
  [[ ${#targets[@]} -gt 0 ]] || targets=(backend operator)
  for target in "${targets[@]}"; do
    [[ $target == backend || $target == operator ]] || die "unknown image '$target' (backend, operator)"
  done
  base=${LABELSTACK_BASE:-}
  [[ -z $base || $base == upstream || $base == local ]] || die "LABELSTACK_BASE is '$base': upstream or local"
  BUILDER=$(pick_builder)
  BUILD_ARGS=()
  declare -gA BASES=()
  if [[ -z $base ]]; then
    base=local
    can_pull "$(dockerfile_default Dockerfile.operator PYTHON_IMAGE)" && base=upstream
  fi
  if [[ $base == upstream ]]; then
    # The same bases, spelled out for builders that do not search docker.io.
    if [[ $BUILDER != docker ]]; then
      BASES[backend]=BASE_IMAGE=$(qualified "$(dockerfile_default Dockerfile.backend BASE_IMAGE)")
      BASES[operator]=PYTHON_IMAGE=$(qualified "$(dockerfile_default Dockerfile.operator PYTHON_IMAGE)")
    fi
  else
    make_local_base
    BASES=([backend]="BASE_IMAGE=$LOCAL_BASE" [operator]="PYTHON_IMAGE=$LOCAL_BASE")
  fi
  pip_local_indexes
  for target in "${targets[@]}"; do
    build "$target"
  done
}

# Sourced (the tests do), it only defines the functions.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
