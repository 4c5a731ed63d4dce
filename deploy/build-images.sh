#!/usr/bin/env bash
# Builds bgw's Docker images from nothing (no registry, no base image): each
# image is one binary plus exactly the shared libraries `ldd` lists for it,
# put in a folder, tarred and `docker import`ed. No shell, no package manager.
#
#   bgw-watchdog:<v>  bgw-checker:<v>  bgw-prober:<v>  bgw-agent:<v>
#       ENTRYPOINT the binary; USER 65534 (nobody); /var/lib/bgw owned by it
#   bgw-sample-app:1.0.4, :1.0.5, :1.0.6 (a bad release: APP_FAIL=1)
#       /bgw-agent and /bgw-sample-app; ENTRYPOINT ["/bgw-agent", "--",
#       "/bgw-sample-app"]: the agent wraps the app as the container's PID 1
#
# Usage: deploy/build-images.sh [--bin-dir DIR] [--prefix P] [--tag T]
#   --bin-dir DIR  use the binaries in DIR instead of building them with
#                  `cargo build --profile quick` (target/quick)
#   --prefix P     prepend P to every repository name (the tests use
#                  `bgw-e2e-` so they never touch an operator's images)
#   --tag T        tag of the four bgw images (default: the workspace version)
#   --app-only     only the sample app's images (what the swarm drills run)
# Prints one line per image: name and size.
set -euo pipefail
cd "$(dirname "$0")/.."

bin_dir="" prefix="" tag="" app_only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) bin_dir="$2"; shift 2 ;;
    --prefix) prefix="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    --app-only) app_only=1; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "build-images: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "$tag" ]; then
  tag=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
fi
if [ -z "$bin_dir" ]; then
  cargo build --profile quick --locked -p bgw-watchdog -p bgw-agent -p bgw-checker \
    -p bgw-prober -p bgw-sample-app >&2
  bin_dir=target/quick
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# stage ROOT BINARY...: copies each binary to /ROOT/<name> and every library
# ldd lists for it to its own path (copying through symlinks).
stage() {
  local root="$1"; shift
  mkdir -p "$root"/{etc,tmp,proc,sys,dev,run/secrets}
  chmod 1777 "$root/tmp"
  for bin in "$@"; do
    install -m 0755 "$bin_dir/$bin" "$root/$bin"
    ldd "$bin_dir/$bin" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) { print $i; break } }' |
      while read -r lib; do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
      done
  done
  # A user for USER 65534 and the state directory it owns.
  printf 'root:x:0:0:root:/:/nonexistent\nnobody:x:65534:65534:nobody:/var/lib/bgw:/nonexistent\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
}

# import ROOT IMAGE CHANGE...: tars ROOT (files owned by root, /var/lib/bgw
# by 65534) and imports it with the given Dockerfile-style changes. An image
# already holding the same files and changes (label bgw.content) is kept.
import() {
  local root="$1" image="$2"; shift 2
  local content
  content=$( (cd "$root" && find . -type f -print0 | sort -z | xargs -0 sha256sum; printf '%s\n' "$@") | sha256sum | cut -c1-16)
  if [ "$(docker image inspect --format '{{ index .Config.Labels "bgw.content" }}' "$image" 2>/dev/null)" = "$content" ]; then
    printf '%-40s %s (unchanged)\n' "$image" "$(docker image inspect --format '{{.Size}}' "$image" | awk '{ printf "%.1f MB", $1 / 1000000 }')"
    return
  fi
  set -- "$@" "LABEL bgw.content=$content"
  local previous
  previous=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
  local tar="$work/$(echo "$image" | tr ':/' '__').tar"
  tar -C "$root" --owner=0 --group=0 --numeric-owner -cf "$tar" .
  mkdir -p "$work/state/var/lib/bgw"
  tar -C "$work/state" --owner=65534 --group=65534 --numeric-owner -rf "$tar" ./var
  local args=()
  for change in "$@"; do args+=(--change "$change"); done
  docker import "${args[@]}" "$tar" "$image" >/dev/null
  # The image this tag named before, now untagged: removed unless in use.
  if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect --format '{{.Id}}' "$image")" ]; then
    docker rmi "$previous" >/dev/null 2>&1 || true
  fi
  printf '%-40s %s\n' "$image" "$(docker image inspect --format '{{.Size}}' "$image" | awk '{ printf "%.1f MB", $1 / 1000000 }')"
}

for bin in bgw-watchdog bgw-checker bgw-prober bgw-agent; do
  [ -n "$app_only" ] && break
  root="$work/$bin"
  stage "$root" "$bin"
  import "$root" "$prefix$bin:$tag" \
    "ENTRYPOINT [\"/$bin\"]" "USER 65534:65534" "WORKDIR /var/lib/bgw" \
    "LABEL org.opencontainers.image.title=$bin"
done

root="$work/sample-app"
stage "$root" bgw-agent bgw-sample-app
for version in 1.0.4 1.0.5 1.0.6; do
  fail=0
  [ "$version" = 1.0.6 ] && fail=1
  import "$root" "${prefix}bgw-sample-app:$version" \
    'ENTRYPOINT ["/bgw-agent", "--", "/bgw-sample-app"]' "USER 65534:65534" \
    "ENV BGW_VERSION=$version" "ENV APP_FAIL=$fail" "EXPOSE 3000" \
    "LABEL org.opencontainers.image.title=bgw-sample-app"
done
