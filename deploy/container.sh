#!/usr/bin/env bash
# `make container`: the serving image, built offline from the bento, a Debian base made by mmdebstrap
# and a wheelhouse prepared here (deploy/Containerfile says why not `bentoml containerize`).
#   deploy/container.sh tool    the container tool to use (podman, or docker when its daemon answers;
#                               CONTAINER_TOOL=podman insists on podman); installs podman (+ buildah,
#                               runc, mmdebstrap) via apt as root when none is there
#   deploy/container.sh build   bento -> wheelhouse -> base -> image gan-generator:<bento version> + :latest,
#                               then prune
#   deploy/container.sh prune   remove all but the newest KEEP_IMAGES versions of the image
# Environment: PY (the project's venv python), GPU=1 (add the CUDA/cuDNN wheels), OUT (work folder),
# KEEP_IMAGES (versions of the image kept after a build, newest first, default 3; 0 keeps all).
# Everything slow is cached: the base image (rebuilt when its package list changes), the wheelhouse in
# $OUT (when the requirements or the venv's versions change) and the image layers (the tool's storage).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[[ $PY = /* ]] || PY=$PWD/$PY
GPU=${GPU:-0}
OUT=${OUT:-build/container}
IMAGE=${IMAGE:-gan-generator}
BASE_PACKAGES=python3,python3-venv,tini
BASE_IMAGE=localhost/gan-base:bookworm
VARIANT=""
if [ "$GPU" = 1 ]; then VARIANT=-gpu; fi
WHEELS=$PWD/$OUT/wheels$VARIANT # one wheelhouse per variant
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/deploy/containers.conf}
export BENTOML_DO_NOT_TRACK=true BENTOML_HOME=$PWD/$OUT/bentoml
say() { echo "container $(date +%T): $*" >&2; }

tool() {
    local want=${CONTAINER_TOOL:-}
    if [ -z "$want" ]; then
        want=podman
        if ! command -v podman >/dev/null && command -v docker >/dev/null && docker info >/dev/null 2>&1; then
            want=docker
        fi
    fi
    if [ "$want" = docker ]; then
        docker info >/dev/null 2>&1 || { say "docker: no daemon answers (docker info)"; exit 1; }
    else
        need podman runc
    fi
    need mmdebstrap
    echo "$want"
}

# Installs what is missing via apt as root (podman needs runc here: crun refuses the host's cgroups).
need() {
    local missing=() c
    for c in "$@"; do command -v "$c" >/dev/null || missing+=("$c"); done
    [ ${#missing[@]} = 0 ] && return
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        say "missing ${missing[*]}: install podman, buildah, runc and mmdebstrap (apt), or run this as root"
        exit 1
    fi
    say "missing ${missing[*]}: installing podman, buildah, runc, mmdebstrap (apt)"
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman buildah runc mmdebstrap >&2
}

# The bento `bentoml build` makes: the files the image serves (torch-free, bentofile.yaml).
bento() {
    mkdir -p "$OUT"
    "$PY" -m bentoml build >"$OUT/bentoml-build.log" 2>&1 || { cat "$OUT/bentoml-build.log" >&2; exit 1; }
    local dir
    dir=$(ls -dt "$BENTOML_HOME"/bentos/gan-generator/*/ | grep -v /latest/ | head -1)
    echo "${dir%/}"
}

# Wheels of the bento's requirements at the versions this venv runs (so the image answers the
# same bytes as `make serve`), fetched and built here; the image build installs them with --no-index.
wheelhouse() {
    local bento=$1 want=$WHEELS.want
    {
        cat "$bento/env/python/requirements.txt"
        [ "$GPU" = 1 ] && echo "onnxruntime-gpu[cuda,cudnn]"
        echo "# constraints: this venv's versions"
        "$PY" -m pip freeze --exclude-editable | grep -v ' @ '
    } >"$want.new"
    if [ -f "$WHEELS/requirements.txt" ] && cmp -s "$want.new" "$want"; then
        rm "$want.new"
        say "wheelhouse up to date ($WHEELS)"
        return
    fi
    rm -rf "$WHEELS" && mkdir -p "$WHEELS"
    sed -n '/^# constraints/,$p' "$want.new" | tail -n +2 >"$WHEELS/constraints.txt"
    { sed '/^# constraints/,$d' "$want.new"; echo "-c constraints.txt"; } >"$WHEELS/requirements.tmp"
    say "wheelhouse: pip wheel -> $WHEELS"
    (cd "$WHEELS" && "$PY" -m pip wheel -q -w . -r requirements.tmp)
    mv "$WHEELS/requirements.tmp" "$WHEELS/requirements.txt"
    mv "$want.new" "$want"
}

# A Debian root file system (minbase + Python 3.11, venv, tini) from the Debian mirror, imported and
# labelled with its package list: kept while that list is unchanged, across clones (remove the image
# to take Debian's latest updates).
base() {
    local t=$1 have
    have=$("$t" image inspect --format '{{index .Labels "gan.base.packages"}}' "$BASE_IMAGE" 2>/dev/null || true)
    if [ "$have" = "$BASE_PACKAGES" ]; then
        say "base $BASE_IMAGE up to date"
        return
    fi
    say "base: mmdebstrap bookworm minbase + $BASE_PACKAGES"
    mkdir -p "$OUT"
    # No documentation, manual pages or translations: nothing in the image reads them.
    mmdebstrap --quiet --variant=minbase --include="$BASE_PACKAGES" \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
        bookworm "$OUT/base.tar"
    "$t" import --change "LABEL gan.base.packages=$BASE_PACKAGES" "$OUT/base.tar" "$BASE_IMAGE" >/dev/null
    rm -f "$OUT/base.tar"
}

build() {
    local t bento version ctx
    t=$(tool)
    bento=$(bento)
    version=$(basename "$bento")
    wheelhouse "$bento"
    base "$t"
    # The context: the bento and the wheelhouse, as hard links (no copy of the ~300 MB of wheels).
    ctx=$OUT/context
    rm -rf "$ctx" && mkdir -p "$ctx"
    cp -al "$WHEELS" "$ctx/wheels"
    cp -a "$bento" "$ctx/bento"
    local tag=$IMAGE:$version$VARIANT
    say "building $tag with $t"
    local fmt=()
    [ "$t" = podman ] && fmt=(--format docker) # the OCI format has no HEALTHCHECK
    "$t" build "${fmt[@]}" --build-arg BASE="$BASE_IMAGE" --build-arg GPU="$GPU" \
        -f deploy/Containerfile -t "$tag" -t "$IMAGE:latest$VARIANT" "$ctx" >&2
    rm -rf "$ctx"
    say "built $tag ($("$t" image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.0f MiB", $1/1048576}'))"
    echo "$tag" >"$OUT/image$VARIANT"
    prune "$t"
}

# Every build tags a new bento version (~750 MB each); keep the newest KEEP_IMAGES of this variant. Layers
# they share with a kept image stay, and so do untagged cache layers (the next build reuses them).
prune() {
    local t=$1 keep=${KEEP_IMAGES:-3} old
    [ "$keep" -gt 0 ] || return 0
    old=$("$t" images --format '{{.Repository}}:{{.Tag}}' "$IMAGE" | awk -v v="$VARIANT" -v keep="$keep" '
        { tag = $0; sub(/.*:/, "", tag) }
        tag == "latest" v || tag == "<none>" { next }
        (v == "" && tag ~ /-gpu$/) || (v != "" && tag !~ /-gpu$/) { next }
        ++n > keep { print }')
    [ -z "$old" ] && return 0
    say "removing older versions of $IMAGE$VARIANT: $(echo $old)"
    # shellcheck disable=SC2086 # one argument per tag
    "$t" rmi $old >/dev/null || say "could not remove some (in use?): kept"
}

case "${1:-}" in
tool) tool ;;
build) build ;;
prune) prune "$(tool)" ;;
*) echo "usage: deploy/container.sh tool|build|prune" >&2 && exit 2 ;;
esac
