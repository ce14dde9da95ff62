#!/usr/bin/env bash
# Builds a release of gitops-guard, locally (nothing but cargo's crates.io is reached).
#
#   scripts/release.sh VERSION [OUT_DIR]
#
# VERSION (`1.2.3` or `v1.2.3`) must be the workspace version in Cargo.toml ([workspace.package]):
# the binaries print that one, so a tag that does not match it is refused. OUT_DIR defaults to
# dist/v<VERSION>. It gets:
#
#   kubectl-gitops_v<V>_linux_<arch>.tar.gz        kubectl-gitops, kubectl_complete-gitops, LICENSE, README.md
#   gitops-guard-webhook_v<V>_linux_<arch>.tar.gz  gitops-guard-webhook, LICENSE, README.md
#   gitops-guard-<V>.tgz                            the Helm chart, version and appVersion <V> (Helm SDK)
#   gitops-guard-webhook-<V>.oci.tar                the image $GITOPS_GUARD_IMAGE:<V> (scripts/build-image.sh)
#   plugins/gitops.yaml                             the krew manifest (archives' URLs and sha256)
#   SHA256SUMS                                      sha256sum of every file above
#
# Binaries are release builds linked statically (`-C target-feature=+crt-static` on the gnu
# target; rustup has no musl target here) for linux/amd64, and for linux/arm64 only where the
# Rust target aarch64-unknown-linux-gnu and the aarch64-linux-gnu-gcc cross linker are installed
# (the script says so when they are not). They build into the target dir scripts/build-image.sh
# uses ($GITOPS_GUARD_STATIC_TARGET_DIR, default ~/.cache/gitops-guard/target-static) with the
# same flags and commit, so the image's webhook is the archive's, built once, and a second run
# of the same tree rebuilds nothing.
#
# The image needs buildah (and root for its chroot isolation); without a working buildah the
# script says so and leaves the image out (SKIP_IMAGE=1 leaves it out on purpose).
# The chart is packaged with the Helm v4 SDK from PyPI (`pip install helm-python-sdk`, import
# helm_python; charts/tests/requirements.txt pins it).
#
# Env: GITOPS_GUARD_RELEASE_URL (where the archives will be downloaded from; default
# <repository>/releases/download/v<V>, the repository from Cargo.toml), GITOPS_GUARD_IMAGE,
# GITOPS_GUARD_COMMIT (default: git rev-parse HEAD; embedded in the binaries), SOURCE_DATE_EPOCH
# (default: the commit's time; archive timestamps). Prints OUT_DIR.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${GITOPS_GUARD_CACHE:-$HOME/.cache/gitops-guard}"

log() { echo "release: $*" >&2; }
die() { log "$*"; exit 1; }

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: scripts/release.sh VERSION [OUT_DIR]"
VERSION="${1#v}"
[[ "$VERSION" =~ ^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$ ]] \
  || die "VERSION $1 is not a semantic version (1.2.3, 1.2.3-rc.1, with or without a leading v)"
TAG="v$VERSION"
OUT="${2:-$ROOT/dist/$TAG}"

WORKSPACE_VERSION="$(sed -n '/^\[workspace\.package\]/,/^\[/{s/^version *= *"\([^"]*\)".*/\1/p}' "$ROOT/Cargo.toml")"
[ "$WORKSPACE_VERSION" = "$VERSION" ] \
  || die "VERSION $VERSION is not the workspace version $WORKSPACE_VERSION: set version = \"$VERSION\" under [workspace.package] in Cargo.toml (the binaries print it) and commit, then release"
REPOSITORY="$(sed -n '/^\[workspace\.package\]/,/^\[/{s/^repository *= *"\([^"]*\)".*/\1/p}' "$ROOT/Cargo.toml")"
[ -n "$REPOSITORY" ] || die "no repository under [workspace.package] in Cargo.toml"
URL_BASE="${GITOPS_GUARD_RELEASE_URL:-$REPOSITORY/releases/download/$TAG}"
[[ "$URL_BASE" == https://* ]] || die "GITOPS_GUARD_RELEASE_URL $URL_BASE is not https (krew downloads only over https)"

for tool in cargo python3 tar gzip sha256sum readelf; do
  command -v "$tool" >/dev/null || die "$tool not found: install it (python3 with helm-python-sdk for the chart)"
done
python3 -c 'import helm_python' 2>/dev/null \
  || die "python3 cannot import helm_python: pip install helm-python-sdk (charts/tests/requirements.txt pins it)"

if [ -z "${GITOPS_GUARD_COMMIT:-}" ]; then
  GITOPS_GUARD_COMMIT="$(git -C "$ROOT" rev-parse HEAD 2>/dev/null)" \
    || die "cannot read the Git commit of $ROOT: run in a clone, or set GITOPS_GUARD_COMMIT"
fi
export GITOPS_GUARD_COMMIT
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH="$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)"
fi
export SOURCE_DATE_EPOCH
if [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  log "warning: $ROOT has uncommitted changes; the binaries say commit $GITOPS_GUARD_COMMIT all the same"
fi

LICENSE_FILE="$ROOT/LICENSE"
if [ ! -f "$LICENSE_FILE" ]; then
  # Cargo.toml says Apache-2.0; Debian's base-files carries that license's text.
  LICENSE_FILE=/usr/share/common-licenses/Apache-2.0
  [ -f "$LICENSE_FILE" ] || die "no LICENSE in $ROOT and no $LICENSE_FILE: add the Apache-2.0 text as $ROOT/LICENSE"
  log "no LICENSE in $ROOT: the archives carry $LICENSE_FILE (the license Cargo.toml names)"
fi

export CARGO_TARGET_DIR="${GITOPS_GUARD_STATIC_TARGET_DIR:-$CACHE/target-static}"

# os/arch (krew's and Go's names) → Rust target; arm64 only when this machine can cross-build it.
PLATFORMS=("linux/amd64=x86_64-unknown-linux-gnu")
INSTALLED_TARGETS="$(rustup target list --installed 2>/dev/null || true)"
if grep -qx 'aarch64-unknown-linux-gnu' <<<"$INSTALLED_TARGETS" && command -v aarch64-linux-gnu-gcc >/dev/null; then
  PLATFORMS+=("linux/arm64=aarch64-unknown-linux-gnu")
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
  export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
else
  log "linux/arm64: not built: this toolchain cannot cross-compile it (needs \`rustup target add aarch64-unknown-linux-gnu\` and the aarch64-linux-gnu-gcc cross linker, Debian package gcc-aarch64-linux-gnu); the release has linux/amd64 only"
fi
[ "$(uname -m)" = x86_64 ] || die "this script builds linux/amd64 natively: run it on an x86_64 Linux machine"

rm -rf "$OUT"
mkdir -p "$OUT/plugins"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gitops-guard-release.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# A reproducible tar.gz of the files in DIR (names sorted, owner root, mtime SOURCE_DATE_EPOCH).
archive() { # OUT_FILE DIR FILE...
  local out="$1" dir="$2"
  shift 2
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
    --format=gnu -C "$dir" -cf - "$@" | gzip -9 -n >"$out"
}

declare -A SHA
KREW_PLATFORMS=""
for platform in "${PLATFORMS[@]}"; do
  osarch="${platform%%=*}"
  target="${platform#*=}"
  os="${osarch%/*}"
  arch="${osarch#*/}"
  # A wrapper around cargo may pick another target dir than CARGO_TARGET_DIR: ask cargo.
  target_dir="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
  export GITOPS_GUARD_STATIC_TARGET_DIR="$target_dir"
  log "building kubectl-gitops and gitops-guard-webhook $VERSION for $osarch ($target, static, release) in $target_dir"
  # One package at a time, as scripts/build-image.sh builds the webhook: cargo unifies the
  # dependencies' features over the packages of one build, so building both at once would make
  # a webhook the image build could not reuse.
  for package in kubectl-gitops gitops-guard-webhook; do
    (
      cd "$ROOT"
      RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
        cargo build --release --locked -j 2 --target "$target" -p "$package" >&2
    )
  done
  for bin in kubectl-gitops gitops-guard-webhook; do
    built="$target_dir/$target/release/$bin"
    [ -x "$built" ] || die "cargo did not produce $built"
    if readelf -lW "$built" | grep -q INTERP; then
      die "$built asks for a dynamic loader: it is not static (RUSTFLAGS must keep -C target-feature=+crt-static)"
    fi
    stage="$WORK/$bin-$os-$arch"
    mkdir -p "$stage"
    if [ "$arch" = amd64 ]; then strip -o "$stage/$bin" "$built"; else cp "$built" "$stage/$bin"; fi
    chmod 0755 "$stage/$bin"
    cp "$LICENSE_FILE" "$stage/LICENSE"
    sed "s/VERSION/$VERSION/g" "$ROOT/scripts/release/README.$bin.md" >"$stage/README.md"
    files=("$bin" LICENSE README.md)
    if [ "$bin" = kubectl-gitops ]; then
      install -m 0755 "$ROOT/scripts/release/kubectl_complete-gitops" "$stage/kubectl_complete-gitops"
      files+=(kubectl_complete-gitops)
    fi
    chmod 0644 "$stage/LICENSE" "$stage/README.md"
    name="${bin}_${TAG}_${os}_${arch}.tar.gz"
    archive "$OUT/$name" "$stage" "${files[@]}"
    SHA[$name]="$(sha256sum "$OUT/$name" | cut -d' ' -f1)"
    log "$name sha256 ${SHA[$name]}"
  done
  name="kubectl-gitops_${TAG}_${os}_${arch}.tar.gz"
  KREW_PLATFORMS+="  - selector:
      matchLabels:
        os: $os
        arch: $arch
    uri: $URL_BASE/$name
    sha256: ${SHA[$name]}
    bin: kubectl-gitops
    files:
      - from: kubectl-gitops
        to: .
      - from: kubectl_complete-gitops
        to: .
      - from: LICENSE
        to: .
"
done

# The krew manifest (krew's Plugin kind; the name is the file name, version with its v).
cat >"$OUT/plugins/gitops.yaml" <<EOF
apiVersion: krew.googlecontainertools.github.com/v1alpha2
kind: Plugin
metadata:
  name: gitops
spec:
  version: $TAG
  homepage: $REPOSITORY
  shortDescription: Which Git commit owns each live object under Flux or Argo CD
  description: |
    Shows, for every live object that Flux or Argo CD manages, the Git
    repository, file and commit it comes from, and what differs from Git.
    Changes managed objects through Git: edit, scale, set image, patch,
    label and annotate open a pull request instead of changing the cluster.
    doctor lists every way around the gitops-guard admission webhook.
  caveats: |
    status, trace, blame and diff read any cluster. They need read access
    to the objects and to the Flux or Argo CD objects that own them, and
    the Git repositories those read (a clone you run in, --repo, or one
    fetched into ~/.cache/kubectl-gitops).

    Denials of hand edits, break-glass windows and exceptions need the
    gitops-guard admission webhook in the cluster (its Helm chart,
    gitops-guard-$VERSION.tgz). kubectl gitops version says whether it is
    reachable and which version runs; kubectl gitops doctor checks it.

    Completion of kubectl gitops <TAB> (kubectl 1.26+): krew links only
    kubectl-gitops; link the completion helper next to it:
      cd "\${KREW_ROOT:-\$HOME/.krew}/bin" &&
        ln -s ../store/gitops/$TAG/kubectl_complete-gitops .
  platforms:
$KREW_PLATFORMS
EOF

log "packaging the chart $VERSION with the Helm SDK"
CHART_TGZ="$(python3 - "$ROOT/charts/gitops-guard" "$OUT" "$VERSION" <<'PY'
import sys
import helm_python

path, out, version = sys.argv[1:]
print(helm_python.package(path, destination=out, version=version, app_version=version))
PY
)"
[ -f "$CHART_TGZ" ] || die "the Helm SDK wrote no chart package (it said: $CHART_TGZ)"

if [ "${SKIP_IMAGE:-0}" = 1 ]; then
  log "image: left out (SKIP_IMAGE=1)"
elif ! command -v buildah >/dev/null; then
  log "image: not built: buildah is not installed here (apt-get install buildah); the release workflow builds it"
elif ! buildah --version >/dev/null 2>&1; then
  log "image: not built: buildah does not run here ($(buildah --version 2>&1 | head -1))"
else
  log "building the image $VERSION with buildah (scripts/build-image.sh)"
  "$ROOT/scripts/build-image.sh" "$OUT" >/dev/null
fi

(
  cd "$OUT"
  find . -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort | xargs sha256sum >SHA256SUMS
)
log "done: $(cd "$OUT" && find . -type f -printf '%P ' | tr -s ' ')"
echo "$OUT"
