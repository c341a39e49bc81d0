#!/usr/bin/env bash
# Builds one OCI image per Sympozium binary with buildah, from scratch (no base image is
# pulled): the stripped binary, the shared libraries `ldd` says it loads, /etc/passwd and
# /etc/group with the non-root user `sympozium` (65532), the CA bundle (TLS to LLM
# providers), an empty /tmp. No shell, no package manager.
#
#   scripts/images.sh [--profile release|dist|debug] [--out DIR] [--no-build] [--bin-dir DIR] [IMAGE...]
#
# Output: DIR/<image>.tar (OCI image archive, `oci-archive:` in skopeo/podman terms) and
# DIR/<image>.digest (the manifest digest). DIR defaults to target/images. The default
# profile is release; dist (size-optimised, whole-program LTO: a third less resident memory
# for the controller, ~15 minutes per binary to build) is what published images use; the
# image test uses debug binaries.
#
# Reproducible: file times are set to the epoch, the image is committed with
# `--timestamp 0`, and the archive is written with sorted names and zeroed tar metadata,
# so the same binaries give byte-identical archives. Annotations (OCI image spec):
# org.opencontainers.image.{title,version,revision,source,licenses,created}.
#
# buildah runs daemonless as root here: vfs storage in a private root under DIR/.buildah
# (no overlay or fuse needed) and chroot isolation (no `buildah run` is used at all, the
# rootfs is assembled on the host and added as one layer).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
profile=release
out="$repo/target/images"
build=true
bindir=""
wanted=()
while (($#)); do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --no-build) build=false; shift ;;
    --bin-dir) bindir="$2"; shift 2 ;;
    -h | --help) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "images: unknown option $1 (try --help)" >&2; exit 2 ;;
    *) wanted+=("$1"); shift ;;
  esac
done

# Image name -> binary. The names are the last path segment the controller puts in pod
# specs ({registry}/{name}:{tag}); the four channel images run the same binary.
declare -A bin_for=(
  [controller]=sympozium-controller
  [webhook]=sympozium-webhook
  [agent-runner]=sympozium-agent-runner
  [ipc-bridge]=sympozium-ipc-bridge
  [tool-executor]=tool-executor
  [memory-server]=sympozium-memory-server
  # The name the controller gives an instance's memory server (the original's image name).
  [skill-memory]=sympozium-memory-server
  [mcp-bridge]=sympozium-mcp-bridge
  [web-proxy]=sympozium-web-proxy
  [apiserver]=sympozium-apiserver
  [channel-telegram]=sympozium-channel
  [channel-slack]=sympozium-channel
  [channel-discord]=sympozium-channel
  [channel-whatsapp]=sympozium-channel
  [cli]=sympozium
)
if ((${#wanted[@]} == 0)); then
  mapfile -t wanted < <(printf '%s\n' "${!bin_for[@]}" | sort)
fi
for name in "${wanted[@]}"; do
  [[ -n "${bin_for[$name]:-}" ]] || { echo "images: unknown image $name (known: ${!bin_for[*]})" >&2; exit 2; }
done

command -v buildah >/dev/null || { echo "images: buildah not found (scripts/prereqs.sh installs it)" >&2; exit 1; }
[[ "$(id -u)" == 0 ]] || { echo "images: buildah needs root here (vfs storage, chroot isolation)" >&2; exit 1; }

cd "$repo"
if $build; then
  bins=()
  for name in "${wanted[@]}"; do bins+=(--bin "${bin_for[$name]}"); done
  case "$profile" in
    release) flag=(--release) ;;
    debug) flag=() ;;
    dist) flag=(--profile dist) ;;
    *) echo "images: profile must be release, dist or debug" >&2; exit 2 ;;
  esac
  cargo build --locked "${flag[@]}" "${bins[@]}"
fi
bindir="${bindir:-${CARGO_TARGET_DIR:-$repo/target}/$profile}"

version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)"
source_url="$(sed -n '/^\[workspace.package\]/,/^\[/s/^repository = "\(.*\)"/\1/p' Cargo.toml)"
license="$(sed -n '/^\[workspace.package\]/,/^\[/s/^license = "\(.*\)"/\1/p' Cargo.toml)"
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
if [[ "$revision" != unknown ]] && [[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
  revision="$revision-dirty"
fi
tag="${SYMPOZIUM_IMAGE_TAG:-$version}"

mkdir -p "$out"
out="$(cd "$out" && pwd)"
store="$out/.buildah"
B=(buildah --root "$store/root" --runroot "$store/run" --storage-driver vfs)
export BUILDAH_ISOLATION=chroot

# Copies a file to the same path under $1, following symlinks (the loader asks for the
# soname, which is a symlink on the host).
put() { mkdir -p "$1$(dirname "$2")"; cp -L "$2" "$1$2"; }

stage_rootfs() { # $1 rootfs dir, $2 binary path, $3 binary name
  local root="$1" bin="$2" name="$3" lib
  rm -rf "$root"
  mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/tmp" "$root/home/sympozium"
  # Debug info is most of a debug binary's size and nothing at run time needs it.
  objcopy --strip-debug "$bin" "$root/usr/local/bin/$name"
  # ldd prints "name => /path (addr)" for libraries and "/path (addr)" for the loader.
  while read -r lib; do
    [[ -n "$lib" ]] && put "$root" "$lib"
  done < <(ldd "$bin" | awk '/=>/ { if ($3 ~ /^\//) print $3; next } $1 ~ /^\// { print $1 }')
  cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
sympozium:x:65532:65532:sympozium:/home/sympozium:/sbin/nologin
EOF
  cat >"$root/etc/group" <<'EOF'
root:x:0:
sympozium:x:65532:
EOF
  cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  chmod 1777 "$root/tmp"
  chown 65532:65532 "$root/home/sympozium"
  find "$root" -exec touch -h -d @0 {} +
}

# Writes the OCI layout $1 as a tar archive $2 with sorted names and no host metadata.
pack() {
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$1" -cf "$2.partial" . && mv "$2.partial" "$2"
}

work="$out/.work"
rm -rf "$work"
mkdir -p "$work"
for name in "${wanted[@]}"; do
  binary="${bin_for[$name]}"
  [[ -x "$bindir/$binary" ]] || { echo "images: $bindir/$binary missing (build it or drop --no-build)" >&2; exit 1; }
  stage_rootfs "$work/rootfs" "$bindir/$binary" "$binary"
  # Pod specs run the MCP adapter by the path of its contract (the stdio MCPServer's init
  # container calls `/usr/local/bin/mcp-bridge --install-to …`).
  if [[ "$name" == mcp-bridge ]]; then ln -s "$binary" "$work/rootfs/usr/local/bin/mcp-bridge"; fi
  ctr="$("${B[@]}" from --name "sympozium-$name-$$" scratch)"
  "${B[@]}" add --quiet "$ctr" "$work/rootfs/" / >/dev/null
  annotate=()
  for kv in "title=sympozium-$name" "version=$version" "revision=$revision" "source=$source_url" \
    "licenses=$license" "created=1970-01-01T00:00:00Z"; do
    annotate+=(--annotation "org.opencontainers.image.$kv" --label "org.opencontainers.image.$kv")
  done
  "${B[@]}" config --entrypoint "[\"/usr/local/bin/$binary\"]" --cmd '' --user 65532:65532 \
    --workingdir /home/sympozium --created-by "scripts/images.sh" --env PATH=/usr/local/bin --env HOME=/home/sympozium \
    --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt "${annotate[@]}" "$ctr"
  rm -rf "$work/layout"
  "${B[@]}" commit --quiet --timestamp 0 --format oci --rm "$ctr" "oci:$work/layout:$name:$tag" >/dev/null
  pack "$work/layout" "$out/$name.tar"
  digest="$(sed -n 's/.*"digest":"\(sha256:[0-9a-f]*\)".*/\1/p' "$work/layout/index.json")"
  echo "$digest" >"$out/$name.digest"
  printf 'images: %-18s %s %s\n' "$name" "$(du -h "$out/$name.tar" | cut -f1)" "$digest" >&2
done
rm -rf "$work"
# Stored layers are only a cache of what the archives already hold.
"${B[@]}" rm --all >/dev/null 2>&1 || true
"${B[@]}" rmi --all --force >/dev/null 2>&1 || true
echo "$out"
