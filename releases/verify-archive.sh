#!/usr/bin/env bash
# Checks a release archive as a user would get it: the checksum matches, it
# unpacks, its binaries run and report this version, and it holds the
# documentation, completions, man pages and service files.
#
#   releases/verify-archive.sh target/dist/confab-<version>-<triple>.tar.gz
set -euo pipefail
archive=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$(dirname "$0")/../Cargo.toml" | head -n 1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cd "$(dirname "$archive")"
if command -v sha256sum >/dev/null 2>&1; then
    sha256sum -c "$(basename "$archive").sha256"
else
    shasum -a 256 -c "$(basename "$archive").sha256"
fi
tar -C "$work" -xzf "$archive"
dir="$work/$(basename "$archive" .tar.gz)"
for bin in tracker client; do
    out=$("$dir/$bin" --version)
    echo "$out"
    case "$out" in
        "$bin $version ("*")") ;;
        *) echo "unexpected version line from $bin: $out" >&2; exit 1 ;;
    esac
    for f in "completions/$bin.bash" "completions/_$bin" "completions/$bin.fish" "man/$bin.1"; do
        [ -s "$dir/$f" ] || { echo "missing or empty: $f" >&2; exit 1; }
    done
done
for f in README.md SECURITY.md LICENSE-MIT LICENSE-APACHE CHANGELOG.md tracker.example.toml systemd/confab-tracker.service; do
    [ -s "$dir/$f" ] || { echo "missing or empty: $f" >&2; exit 1; }
done
# The example configuration is valid for this tracker.
"$dir/tracker" --config "$dir/tracker.example.toml" --print-config >/dev/null
echo "archive OK: $(basename "$archive")"
