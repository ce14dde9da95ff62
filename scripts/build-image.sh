#!/usr/bin/env bash
# Builds the gitops-guard webhook container image as an OCI archive, without a Docker daemon.
#
#   scripts/build-image.sh [OUT_DIR]
#
# 1. cargo builds gitops-guard-webhook statically linked (`-C target-feature=+crt-static` on
#    x86_64-unknown-linux-gnu) into its own target dir, so the shared one is not invalidated.
# 2. `buildah --storage-driver vfs bud --isolation chroot` builds the `FROM scratch` Containerfile
#    on a context holding only that binary, with buildah's storage in a temp dir (removed after).
# 3. Prints the archive's path: OUT_DIR/gitops-guard-webhook-<version>.oci.tar
#    (OUT_DIR defaults to $HOME/.cache/gitops-guard/image). The image inside is tagged
#    $GITOPS_GUARD_IMAGE:<version> (default ghcr.io/gitops-guard/gitops-guard-webhook), the
#    chart's default image.repository; <version> is the workspace version = the chart's appVersion.
#
# Needs cargo and buildah (Debian package `buildah`), and root for buildah's chroot isolation.
# Nothing but the Rust build touches the network (no base image is pulled).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${GITOPS_GUARD_CACHE:-$HOME/.cache/gitops-guard}"
OUT_DIR="${1:-$CACHE/image}"
IMAGE="${GITOPS_GUARD_IMAGE:-ghcr.io/gitops-guard/gitops-guard-webhook}"
TARGET=x86_64-unknown-linux-gnu
TARGET_DIR="${GITOPS_GUARD_STATIC_TARGET_DIR:-$CACHE/target-static}"

log() { echo "build-image: $*" >&2; }
die() { log "$*"; exit 1; }

command -v buildah >/dev/null || die "buildah not found: apt-get install buildah"
command -v cargo >/dev/null || die "cargo not found"

# The workspace version ([workspace.package] in Cargo.toml) is the image tag and the chart's appVersion.
VERSION="$(sed -n '/^\[workspace\.package\]/,/^\[/{s/^version *= *"\([^"]*\)".*/\1/p}' "$ROOT/Cargo.toml")"
[ -n "$VERSION" ] || die "no version under [workspace.package] in $ROOT/Cargo.toml"

# The commit the binary reports (GET /version); scripts/release.sh sets the same, so the two
# share one build.
if [ -z "${GITOPS_GUARD_COMMIT:-}" ]; then
  GITOPS_GUARD_COMMIT="$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || true)"
fi
[ -n "$GITOPS_GUARD_COMMIT" ] && export GITOPS_GUARD_COMMIT

log "building gitops-guard-webhook $VERSION (static, $TARGET) in $TARGET_DIR"
(
  cd "$ROOT"
  RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" CARGO_TARGET_DIR="$TARGET_DIR" \
    cargo build --release -j 2 --target "$TARGET" -p gitops-guard-webhook >&2
)
BIN="$TARGET_DIR/$TARGET/release/gitops-guard-webhook"
[ -x "$BIN" ] || die "cargo did not produce $BIN"
if readelf -lW "$BIN" | grep -q 'INTERP'; then
  die "$BIN asks for a dynamic loader; it would not start in a FROM scratch image"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gitops-guard-image.XXXXXX")"
cleanup() {
  # vfs layers may hold read-only directories; make them removable first.
  chmod -R u+w "$WORK" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/context" "$OUT_DIR"
strip -o "$WORK/context/gitops-guard-webhook" "$BIN"
chmod 0555 "$WORK/context/gitops-guard-webhook"

ARCHIVE="$OUT_DIR/gitops-guard-webhook-$VERSION.oci.tar"
rm -f "$ARCHIVE"
log "building $IMAGE:$VERSION into $ARCHIVE"
buildah --root "$WORK/storage" --runroot "$WORK/run" --storage-driver vfs \
  bud --isolation chroot --timestamp 0 --quiet \
  --build-arg "VERSION=$VERSION" \
  -f "$ROOT/Containerfile" \
  -t "oci-archive:$ARCHIVE:$IMAGE:$VERSION" \
  "$WORK/context" >&2
[ -s "$ARCHIVE" ] || die "buildah wrote no archive at $ARCHIVE"
echo "$ARCHIVE"
