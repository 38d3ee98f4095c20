#!/usr/bin/env bash
# Checks a release archive as a user would get it: the checksum matches, it
# unpacks, its binaries run and report this version, and it holds the
# documentation, completions, man pages and service files.
#
#   releases/verify-archive.sh target/dist/confab-<version>-<triple>.tar.gz
#   RUN_WITH=qemu-aarch64-static releases/verify-archive.sh ...aarch64...
#
# RUN_WITH runs the archive's binaries under an emulator (Debian's
# qemu-user-static), for an archive built for another CPU: the release
# workflow's aarch64 Linux one.
set -euo pipefail
archive=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$(dirname "$0")/../Cargo.toml" | head -n 1)
work=$(mktemp -d)
tracker_pid=""
runner=()
if [ -n "${RUN_WITH:-}" ]; then
    runner=("$RUN_WITH")
fi
# The tracker started below is stopped if this script fails before it ends.
trap 'if [ -n "$tracker_pid" ]; then kill "$tracker_pid" 2>/dev/null || true; fi; rm -rf "$work"' EXIT

cd "$(dirname "$archive")"
if command -v sha256sum >/dev/null 2>&1; then
    sha256sum -c "$(basename "$archive").sha256"
else
    shasum -a 256 -c "$(basename "$archive").sha256"
fi
tar -C "$work" -xzf "$archive"
dir="$work/$(basename "$archive" .tar.gz)"
for bin in tracker client; do
    out=$(${runner[@]+"${runner[@]}"} "$dir/$bin" --version)
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
${runner[@]+"${runner[@]}"} "$dir/tracker" --config "$dir/tracker.example.toml" --print-config >/dev/null
# The archive's tracker serves a chat: over TLS (its default) a member
# logs in with the password, speaks in #general and leaves; the tracker,
# its last member gone, stops by itself with status 0, and chat.log holds
# the line. Catches a binary that starts but cannot serve (a static build
# whose TLS, SQLite or threads fail at run time).
run="$work/run"
mkdir -p "$run"
CONFAB_PASSWORD=archive-check ${runner[@]+"${runner[@]}"} "$dir/tracker" --port 0 --bind 127.0.0.1 \
    --log-dir "$run/logs" --data-dir "$run/data" --no-announce --exit-grace 0 \
    >"$run/out" 2>&1 &
tracker_pid=$!
python3 - "$run/out" <<'PY'
import re, socket, ssl, sys, time
deadline = time.time() + 30
port = None
while port is None and time.time() < deadline:
    m = re.search(r"127\.0\.0\.1:(\d+)", open(sys.argv[1]).read())
    port = m and int(m.group(1))
    time.sleep(0.1)
if port is None:
    sys.exit("the archive's tracker printed no address:\n" + open(sys.argv[1]).read())
tls = ssl.create_default_context()
tls.check_hostname = False
tls.verify_mode = ssl.CERT_NONE
conn = tls.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30))
conn.sendall(b"PASS archive-check\r\nNICK checker\r\nUSER checker 0 * :Archive check\r\n")
seen = b""
while b" 001 checker " not in seen:
    data = conn.recv(4096)
    if not data:
        sys.exit("closed before the welcome:\n" + seen.decode(errors="replace"))
    seen += data
conn.sendall(b"PRIVMSG #general :hello from the archive\r\nQUIT :checked\r\n")
while conn.recv(4096):
    pass
print("the archive's tracker served a member over TLS")
PY
status=0
wait "$tracker_pid" || status=$?
tracker_pid=""
if [ "$status" -ne 0 ]; then
    cat "$run/out" >&2
    echo "the archive's tracker exited with status $status" >&2
    exit 1
fi
grep -q "hello from the archive" "$run/logs/chat.log" \
    || { echo "chat.log lacks the member's line" >&2; exit 1; }
echo "archive OK: $(basename "$archive")"
