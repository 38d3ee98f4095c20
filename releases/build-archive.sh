#!/usr/bin/env bash
# Builds the release archive of confab for one platform, with its SHA-256:
#
#   releases/build-archive.sh [--target TRIPLE] [--cargo cargo|cross] [--out DIR]
#
# Default: this machine's platform, into target/dist/. Produces
#   DIR/confab-<version>-<triple>.tar.gz  and  DIR/confab-<version>-<triple>.tar.gz.sha256
# holding tracker, client, README, licenses, changelog, security notes,
# shell completions, man pages, an example configuration and a systemd unit.
set -euo pipefail
cd "$(dirname "$0")/.."

target=""
cargo_cmd="cargo"
out="target/dist"
while (($#)); do
    case "$1" in
        --target) target="$2"; shift 2 ;;
        --cargo) cargo_cmd="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        *) echo "usage: $0 [--target TRIPLE] [--cargo cargo|cross] [--out DIR]" >&2; exit 2 ;;
    esac
done

host=$(rustc -vV | sed -n 's/^host: //p')
triple=${target:-$host}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
name="confab-${version}-${triple}"

# Where cargo puts what it builds (CARGO_TARGET_DIR, if set, as cargo does).
tdir=${CARGO_TARGET_DIR:-target}
if [ -n "$target" ]; then
    "$cargo_cmd" build --release --locked --bins --target "$target"
    bindir="$tdir/${target}/release"
else
    "$cargo_cmd" build --release --locked --bins
    bindir="$tdir/release"
fi

# Completions and man pages come from the binaries' own CLI definitions;
# a cross-compiled binary cannot run here, so use a host build for them.
docbin="$bindir"
if ! "$bindir/tracker" --version >/dev/null 2>&1; then
    cargo build --release --locked --bins
    docbin="$tdir/release"
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
dir="$stage/$name"
mkdir -p "$dir/completions" "$dir/man" "$dir/systemd"
cp "$bindir/tracker" "$bindir/client" "$dir/"
cp README.md SECURITY.md LICENSE-MIT LICENSE-APACHE "$dir/"
cp releases/CHANGELOG.md releases/tracker.example.toml "$dir/"
cp releases/systemd/confab-tracker.service "$dir/systemd/"
for bin in tracker client; do
    "$docbin/$bin" --completions bash >"$dir/completions/$bin.bash"
    "$docbin/$bin" --completions zsh >"$dir/completions/_$bin"
    "$docbin/$bin" --completions fish >"$dir/completions/$bin.fish"
    "$docbin/$bin" --man >"$dir/man/$bin.1"
done

mkdir -p "$out"
archive="$out/$name.tar.gz"
tar -C "$stage" -czf "$archive" "$name"
if command -v sha256sum >/dev/null 2>&1; then
    (cd "$out" && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")
else
    (cd "$out" && shasum -a 256 "$name.tar.gz" >"$name.tar.gz.sha256")
fi
echo "$archive"
