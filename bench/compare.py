#!/usr/bin/env python3
"""Run one load-generator workload against the tracker, ngircd and InspIRCd,
one after the other in the same run, and print the results side by side.

    python3 bench/compare.py b1 --offered 100000
    python3 bench/compare.py b2 --rate 10
    python3 bench/compare.py b4 --clients 2000 [--tls]
    python3 bench/compare.py b8 --rate 100
    python3 bench/compare.py b5            # login storm (TLS, password) during B2
    python3 bench/compare.py --log-sync fsync b6   # B1 at 1.2M, chat.log policy
    python3 bench/compare.py b7            # B1 at 0.6M plus one member that stops reading
    python3 bench/compare.py b9            # 200 rooms of 25, each member in 3
    python3 bench/compare.py reconnect     # 1,000 members drop and log in again
    python3 bench/compare.py soak --duration 1800   # memory over 30 minutes
    python3 bench/compare.py custom --clients 50 --senders 5 --rate 20
    python3 bench/compare.py --history-cost b1 --offered 2000000
                                       # the tracker with its store and without

Everything after the workload name goes to the load generator
(examples/loadgen.rs) and overrides the workload's defaults; see
`cargo run --release --example loadgen -- --help`. Options for this script
come before the workload name:

    --tls              both servers over TLS (ngircd gets a throwaway
                       self-signed P-256 certificate made with openssl)
    --servers LIST     tracker,ngircd,inspircd (default all three); also
                       tracker-no-store, the tracker without its store
                       (hidden --no-store: no accounts, no history kept)
    --history-cost     --servers tracker,tracker-no-store: what keeping
                       history costs (the store's thread shares the
                       tracker's pinned CPU); adds the history rows and
                       chat.log's messages when the generator ended, and
                       the tracker's CPU per delivery
    --no-pin           do not pin (default: server on CPU 0, generator on CPU 1)
    --no-build         do not run `cargo build --release --examples --bins`
    --tracker-password use a password on the tracker too (Argon2id per login)
    --log-sync POLICY  the tracker's --log-sync (write, periodic, fsync)
    --out FILE         append each result's JSON line to FILE
    --no-stall-probe   do not run the stall probe (see below)
    --no-floor         B2 and B9: do not measure the loopback floor
                       (bench/loopback_floor.c, built with cc) after the
                       servers in each round
    --repeat N         run the servers in turn N times (tracker, ngircd,
                       tracker, ...), then print the median of each figure;
                       tail latencies on a shared VM vary several-fold
                       from run to run

The tracker runs with flood control off and high connection limits, with
chat.log on (it always records); ngircd with penalties off, no DNS, ident or
PAM, and a server password. Each server is started fresh for the workload
and stopped after it. Needs python3 (standard library), taskset, and ngircd
(installed with apt-get when missing). Linux only (/proc).

While the generator runs, a stall probe (cyclictest from Debian's rt-tests,
installed when missing; needs root) wakes a real-time thread on each of the
two CPUs every millisecond and reports the longest wait. On a shared VM the
host sometimes takes a CPU away for 20 to 100 ms; a round with such a stall
shows it in the "CPU stall max ms" row instead of passing it off as the
server's latency. Turn it off with --no-stall-probe.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
TRACKER = os.path.join(TARGET, "release", "tracker")
LOADGEN = os.path.join(TARGET, "release", "examples", "loadgen")
PASSWORD = "bench-password"

WORKLOADS = {
    # B1 fan-out: 100 members all sending 128-byte messages; give --offered.
    "b1": {"--clients": "100", "--size": "128", "--offered": "100000",
           "--warmup": "2", "--duration": "10"},
    # B2 low-load latency: as B1 at 1 or 10 messages a second per sender.
    "b2": {"--clients": "100", "--size": "128", "--rate": "1",
           "--warmup": "2", "--duration": "10"},
    # B3 big room: 2,000 members, 200 senders at 1/s (0.4M deliveries/s).
    # (8 logins at a time: see B4.)
    "b3": {"--clients": "2000", "--senders": "200", "--rate": "1",
           "--size": "128", "--warmup": "2", "--duration": "10",
           "--concurrency": "8", "--connect-timeout": "900"},
    # B4 idle members, all logged in with the password (the workload turns
    # --tracker-password on): memory with nobody connected, per member,
    # and after all leave at once.
    # (8 logins at a time: ngircd listens with a backlog of 10, and more
    # connections in flight overflow it, so SYNs are dropped and retried
    # seconds later; that would measure TCP's retry timer, not the server.)
    "b4": {"--idle": None, "--clients": "10000", "--concurrency": "8",
           "--connect-timeout": "1800", "--settle": "3",
           "--leave-settle": "5"},
    # B9 many rooms: 200 rooms of 25 members, each member in 3 rooms (1,667
    # members), every member sending to its rooms in turn. At 0.2M
    # deliveries a second the generator saturates against InspIRCd in most
    # rounds; suite.sh also runs it at 0.1M, where it holds for every server.
    "b9": {"--rooms": "200", "--room-size": "25", "--rooms-per-member": "3",
           "--room": "#room", "--offered": "200000", "--size": "128",
           "--warmup": "2", "--duration": "10", "--concurrency": "8",
           "--connect-timeout": "900"},
    # Reconnect storm: B2 at 1/s (100 members) while 1,000 more members,
    # logged in before the window, drop at once 5 s into it and log in
    # again with the password (the workload turns --tracker-password on),
    # 64 at a time; the window runs 60 s.
    "reconnect": {"--clients": "100", "--size": "128", "--rate": "1",
                  "--warmup": "2", "--duration": "60", "--reconnect": "1000",
                  "--reconnect-at": "5", "--storm-concurrency": "64",
                  "--concurrency": "8", "--connect-timeout": "900"},
    # Soak: 1,000 members, 50 sending 2/s each (100k deliveries/s), memory
    # sampled every 10 s; give the length with --duration (suite.sh: 3
    # minutes, SOAK_MIN=30 for the full one). The slope counts from 5
    # minutes on (a third of the window when shorter).
    "soak": {"--clients": "1000", "--senders": "50", "--rate": "2",
             "--size": "128", "--warmup": "2", "--duration": "180",
             "--rss-every": "10", "--rss-skip": "300", "--concurrency": "8",
             "--connect-timeout": "900"},
    # B8 direct messages: 50 sender/receiver pairs.
    "b8": {"--dm-pairs": "50", "--rate": "100", "--size": "128",
           "--warmup": "2", "--duration": "10"},
    # B5 login storm: B2 at 1/s in the background while 500 more clients log
    # in over TLS with the password and join (the workload turns on --tls
    # and --tracker-password).
    "b5": {"--clients": "100", "--size": "128", "--rate": "1",
           "--warmup": "2", "--duration": "20", "--storm": "500",
           "--storm-concurrency": "32", "--connect-timeout": "120"},
    # B6 transcript: B1 at 1.2M; give the tracker's policy with --log-sync.
    "b6": {"--clients": "100", "--size": "128", "--offered": "1200000",
           "--warmup": "2", "--duration": "5"},
    # B7 slow consumer: B1 at 0.6M plus one member that stops reading when
    # the window starts.
    "b7": {"--clients": "100", "--size": "128", "--offered": "600000",
           "--warmup": "2", "--duration": "15", "--stall": "1"},
    "custom": {},
}

# Options a workload needs whatever the command line says.
IMPLIED = {
    "b5": {"tls": True, "tracker_password": True},
    "b4": {"tracker_password": True},
    "reconnect": {"tracker_password": True},
    # ngircd keeps no transcript: B6 compares the tracker's policies.
    "b6": {"servers": ["tracker"]},
}


def parse_extra(tokens):
    """--key value / --flag pairs, in order."""
    out = {}
    i = 0
    while i < len(tokens):
        key = tokens[i]
        if not key.startswith("--"):
            sys.exit(f"compare.py: expected an option, got {key!r}")
        if "=" in key:
            k, v = key.split("=", 1)
            out[k] = v
            i += 1
        elif i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
            out[key] = tokens[i + 1]
            i += 2
        else:
            out[key] = None
            i += 1
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def pin(cpu, enabled):
    return ["taskset", "-c", str(cpu)] if enabled else []


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_tracker(tmp, tls, use_password, pinned, clients, log_sync,
                  no_store=False):
    limit = str(max(20000, clients + 100))
    cmd = pin(0, pinned) + [
        TRACKER, "--port", "0", "--bind", "127.0.0.1", "--stay",
        "--flood-rate", "0", "--max-connections", limit,
        "--max-per-address", limit,
        "--log-dir", os.path.join(tmp, "logs"),
        "--data-dir", os.path.join(tmp, "data")]
    if no_store:
        cmd.append("--no-store")
    if log_sync:
        cmd += ["--log-sync", log_sync]
    env = dict(os.environ)
    env.pop("CONFAB_PASSWORD", None)
    if use_password:
        env["CONFAB_PASSWORD"] = PASSWORD
    else:
        cmd.append("--no-password")
    if not tls:
        cmd.append("--no-tls")
    err = open(os.path.join(tmp, "tracker.err"), "w")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err,
                            stdin=subprocess.DEVNULL, env=env, text=True)
    end = time.time() + 15
    while time.time() < end:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("listening on "):
            port = int(line.strip().rsplit(":", 1)[1])
            # Keep reading stdout so the tracker never blocks on it.
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return proc, port, (PASSWORD if use_password else None)
    stop(proc)
    raise RuntimeError("the tracker printed no listening address "
                       f"(see {tmp}/tracker.err)")


def ensure_ngircd():
    if shutil.which("ngircd"):
        return
    print("ngircd is missing: apt-get install -y ngircd", file=sys.stderr)
    quiet = {"stdout": subprocess.DEVNULL}
    if subprocess.run(["apt-get", "install", "-y", "ngircd"], **quiet).returncode:
        subprocess.run(["apt-get", "update"], **quiet, check=True)
        subprocess.run(["apt-get", "install", "-y", "ngircd"], **quiet,
                       check=True)


def start_ngircd(tmp, tls, pinned):
    ensure_ngircd()
    port = free_port()
    conf = os.path.join(tmp, "ngircd.conf")
    ssl = ""
    if tls:
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
             "-out", cert, "-days", "2", "-subj", "/CN=bench.ngircd.local"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.chmod(key, 0o644)  # ngircd may read it after dropping privileges
        ssl = f"[SSL]\nCertFile = {cert}\nKeyFile = {key}\nPorts = {port}\n"
        plain_ports = str(free_port())  # a plain port is required; unused
    else:
        plain_ports = str(port)
    with open(conf, "w") as f:
        f.write(f"""[Global]
Name = bench.ngircd.local
Info = benchmark server
AdminInfo1 = benchmark
AdminInfo2 = benchmark
AdminEMail = bench@localhost
Listen = 127.0.0.1
Ports = {plain_ports}
Password = {PASSWORD}
MotdPhrase = "benchmark"
[Limits]
MaxConnections = 0
MaxConnectionsIP = 0
MaxJoins = 0
MaxNickLength = 16
MaxPenaltyTime = 0
PingTimeout = 600
PongTimeout = 600
[Options]
DNS = no
Ident = no
PAM = no
{ssl}""")
    err = open(os.path.join(tmp, "ngircd.err"), "w")
    proc = subprocess.Popen(pin(0, pinned) + ["ngircd", "-n", "-f", conf],
                            stdout=err, stderr=err, stdin=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
    except RuntimeError:
        stop(proc)
        raise
    return proc, port, PASSWORD


def ensure_inspircd():
    if shutil.which("inspircd"):
        return
    print("inspircd is missing: apt-get install -y inspircd", file=sys.stderr)
    quiet = {"stdout": subprocess.DEVNULL}
    if subprocess.run(["apt-get", "install", "-y", "inspircd"], **quiet).returncode:
        subprocess.run(["apt-get", "update"], **quiet, check=True)
        subprocess.run(["apt-get", "install", "-y", "inspircd"], **quiet,
                       check=True)


def start_inspircd(tmp, tls, pinned):
    """InspIRCd 3 (Debian), configured as the tracker and ngircd are: 127.0.0.1
    only, the same server password (compared in plain, as ngircd does), no
    flood penalties (fakelag off, a command rate no client reaches), no
    connection limits per address or in all, no DNS or ident lookups, send
    and receive queues at least as large as the tracker's."""
    ensure_inspircd()
    port = free_port()
    conf = os.path.join(tmp, "inspircd.conf")
    modules, sslprofile = "", ""
    if tls:
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
             "-out", cert, "-days", "2", "-subj", "/CN=bench.inspircd.local"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        modules = ('<module name="ssl_gnutls">\n'
                   f'<sslprofile name="bench" provider="gnutls" certfile="{cert}"'
                   f' keyfile="{key}" requestclientcert="no">\n')
        sslprofile = ' sslprofile="bench"'
    with open(conf, "w") as f:
        f.write(f"""<server name="bench.inspircd.local" description="benchmark server" network="bench">
<admin name="benchmark" nick="bench" email="bench@localhost">
<bind address="127.0.0.1" port="{port}" type="clients"{sslprofile}>
{modules}<connect name="bench" allow="*" password="{PASSWORD}" hash="plaintext"
  timeout="60" pingfreq="600" maxchans="1000" hardsendq="64M" softsendq="64M"
  recvq="64K" threshold="1000000" commandrate="100000000" fakelag="no"
  localmax="1000000" globalmax="1000000" maxconnwarn="no" limit="1000000"
  resolvehostnames="no" useident="no" useconnectban="no" useconnflood="no">
<channels users="1000" opers="1000">
<dns server="127.0.0.1" timeout="1">
<pid file="{tmp}/inspircd.pid">
<performance softlimit="1000000" somaxconn="4096" clonesonconnect="no" quietbursts="yes" nouserdns="yes">
<options prefixquit="" syntaxhints="no" announcets="no" hostintopic="no" pingwarning="0">
<security maxtargets="20" userstats="Pu">
<limits maxnick="30" maxchan="64">
""")
    err = open(os.path.join(tmp, "inspircd.err"), "w")
    # --runasroot: the stall probe needs root, so the suite runs as root.
    cmd = pin(0, pinned) + ["inspircd", "--nofork", "--nopid",
                            f"--config={conf}"]
    if os.geteuid() == 0:
        cmd.append("--runasroot")
    # In its folder: InspIRCd 3.15 sometimes dumps core as it stops.
    proc = subprocess.Popen(cmd, stdout=err, stderr=err,
                            stdin=subprocess.DEVNULL, cwd=tmp)
    try:
        wait_port(port, proc)
    except RuntimeError:
        stop(proc)
        raise
    return proc, port, PASSWORD


def ensure_cyclictest():
    """True when the stall probe can run (root, cyclictest present)."""
    if os.geteuid() != 0:
        return False
    if not shutil.which("cyclictest"):
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        subprocess.run(["apt-get", "install", "-y", "rt-tests"], **quiet)
    return shutil.which("cyclictest") is not None


# Wake-ups later than this count as a stall of the CPU.
STALL_MS = 5


def start_stall_probe():
    """cyclictest on CPUs 0 and 1 at real-time priority, every 1 ms. At
    priority 95 it runs as soon as its CPU does: a late wake-up means the
    CPU itself was not running (the VM's host took it, or the kernel did
    not preempt), which delays any server alike. Costs about 1% of each
    core."""
    return subprocess.Popen(
        ["cyclictest", "-t2", "-a", "0,1", "-p", "95", "-m", "-i", "1000",
         "-q", "-h", "200000"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def stop_stall_probe(probe):
    """Per CPU: the longest wake-up delay (ms) and how many were over
    STALL_MS, from cyclictest's histogram (one row per microsecond)."""
    probe.send_signal(signal.SIGINT)
    try:
        out = probe.communicate(timeout=20)[0]
    except subprocess.TimeoutExpired:
        probe.kill()
        return None
    worst, over = [0.0, 0.0], [0, 0]
    for line in out.splitlines():
        if line.startswith("# Max Latencies:"):
            worst = [int(v) / 1000 for v in line.split(":")[1].split()][:2]
        elif line.startswith("# Histogram Overflows:"):
            for cpu, v in enumerate(line.split(":")[1].split()[:2]):
                over[cpu] += int(v)
        elif line and line[0].isdigit():
            cells = line.split()
            if len(cells) >= 3 and int(cells[0]) >= STALL_MS * 1000:
                over[0] += int(cells[1])
                over[1] += int(cells[2])
    return {"max_ms": worst, "over_5ms": over}


# InspIRCd completes a registration on its once-a-second timer (every
# login here took 1.0 s, with DNS lookups off or not), so 8 logins at a time
# (what ngircd's listen backlog of 10 allows) would take 21 minutes for
# B4's 10,000 and measure that timer; its backlog is 4,096 (somaxconn), so
# it gets 256 at a time unless the command line sets --concurrency.
INSPIRCD_CONCURRENCY = "256"


def run_one(server, args, opts):
    tmp = tempfile.mkdtemp(prefix=f"bench-{server}-")
    clients = int(args.get("--clients") or 0)
    if "--dm-pairs" in args:
        clients = 2 * int(args["--dm-pairs"])
    if server in ("tracker", "tracker-no-store"):
        proc, port, password = start_tracker(
            tmp, opts["tls"], opts["tracker_password"], opts["pin"], clients,
            opts["log_sync"], no_store=server == "tracker-no-store")
    elif server == "inspircd":
        proc, port, password = start_inspircd(tmp, opts["tls"], opts["pin"])
    else:
        proc, port, password = start_ngircd(tmp, opts["tls"], opts["pin"])
    if (server == "inspircd" and "--concurrency" in args
            and not opts.get("concurrency_given")):
        args = dict(args, **{"--concurrency": INSPIRCD_CONCURRENCY})
    try:
        time.sleep(0.3)
        cmd = pin(1, opts["pin"]) + [
            LOADGEN, "--addr", f"127.0.0.1:{port}", "--server-pid",
            str(proc.pid), "--label", server]
        if opts["tls"]:
            cmd.append("--tls")
        for k, v in args.items():
            cmd += [k] if v is None else [k, v]
        env = dict(os.environ)
        env.pop("LOADGEN_PASSWORD", None)
        if password:
            env["LOADGEN_PASSWORD"] = password
        print("$ " + " ".join(cmd), flush=True)
        probe = start_stall_probe() if opts["stall_probe"] else None
        try:
            res = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env)
        finally:
            stalls = stop_stall_probe(probe) if probe else None
        out = res.stdout
        sys.stdout.write("".join(l + "\n" for l in out.splitlines()
                                 if not l.startswith("{")))
        if res.returncode != 0:
            return {"label": server, "failed": f"loadgen exited {res.returncode}"}
        lines = [l for l in out.splitlines() if l.startswith("{")]
        result = json.loads(lines[-1])
        if server.startswith("tracker"):
            result.update(history_counts(tmp))
        if stalls:
            result["cpu_stall_max_ms"] = stalls["max_ms"]
            result["cpu_stalls_over_5ms"] = stalls["over_5ms"]
        return result
    finally:
        stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


# The store commits what lingered 0.1 s (store/thread.rs): rows unchanged
# for this long mean it has caught up; it is given at most STORE_WAIT_S.
STORE_SETTLED_S = 1.0
STORE_WAIT_S = 60.0
# A store still adding rows this long after the generator ended put work
# off past the window (suite_table.py marks the round "store behind").
STORE_BEHIND_S = 1.0


def history_counts(tmp):
    """When the generator ended: the messages chat.log holds (its commit
    point) and the history rows the store holds; then how long the store
    took to stop adding rows, and how many it had then. A change that
    defers the store's work past the window (a lower priority, a longer
    linger) looks faster in the window; the rows it adds after the
    generator ended show it."""
    out = {}
    log = os.path.join(tmp, "logs", "chat.log")
    try:
        with open(log, encoding="utf-8", errors="replace") as f:
            out["log_messages"] = sum(1 for l in f if " msg " in l[:30])
    except OSError:
        pass
    db = os.path.join(tmp, "data", "store.db")
    if os.path.exists(db):
        import sqlite3
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)

            def rows():
                return con.execute("SELECT count(*) FROM history").fetchone()[0]

            start = time.monotonic()
            last = out["history_rows"] = rows()
            changed = start
            # No event says the store is done: look every 0.1 s.
            while (time.monotonic() - changed < STORE_SETTLED_S
                   and time.monotonic() - start < STORE_WAIT_S):
                time.sleep(0.1)
                n = rows()
                if n != last:
                    last, changed = n, time.monotonic()
            out["history_rows_settled"] = last
            out["store_caught_up_s"] = round(changed - start, 2)
            con.close()
        except sqlite3.Error as e:
            out["history_rows_error"] = str(e)
    return out


def cpu_per_delivery_us(r):
    cpu, rate, span = (r.get("server_cpu_s"), r.get("delivered_per_s"),
                       r.get("window_s"))
    if cpu is None or not rate or not span:
        return None
    return 1e6 * cpu / (rate * span)


def history_cost(results):
    """The line comparing the tracker with its store and without."""
    by = {r.get("label", "").split(" ")[0]: r for r in results
          if "failed" not in r}
    with_store, without = by.get("tracker"), by.get("tracker-no-store")
    if not with_store or not without:
        return
    a, b = with_store.get("delivered_per_s"), without.get("delivered_per_s")
    ca, cb = cpu_per_delivery_us(with_store), cpu_per_delivery_us(without)
    if a and b:
        print(f"history cost: delivered {a:.0f}/s with the store, {b:.0f}/s "
              f"without ({100 * (a - b) / b:+.1f}%)"
              + (f"; tracker CPU per delivery {ca:.3f} us against {cb:.3f} us "
                 f"({100 * (ca - cb) / cb:+.1f}%)" if ca and cb else ""))


def run_floor(workload, args):
    """bench/loopback_floor.c in the workload's shape, measured in the same
    run as the servers: what the kernel alone charges. B2: one message to
    the other members of the room, one burst per message interval (the
    way in left out). B9: the rooms, members and schedule of the load
    generator, each message read from its sender's connection by a relay
    pinned where the servers are and written to its room's other members
    (the way in included)."""
    exe = os.path.join(tempfile.gettempdir(), "confab_loopback_floor")
    src = os.path.join(ROOT, "bench", "loopback_floor.c")
    if (not os.path.exists(exe)
            or os.path.getmtime(exe) < os.path.getmtime(src)):
        subprocess.run(["cc", "-O2", "-pthread", src, "-o", exe], check=True)
    warmup = float(args.get("--warmup") or 2)
    duration = float(args.get("--duration") or 10)
    if workload == "b9":
        room_size = int(args["--room-size"])
        rate = float(args["--offered"]) / (room_size - 1)
        cmd = [exe, "rooms", args["--rooms"], str(room_size),
               args["--rooms-per-member"], f"{rate:.0f}",
               f"{warmup + duration:g}", f"{warmup:g}"]
    else:
        clients = int(args.get("--clients") or 100)
        senders = int(args.get("--senders") or clients)
        rate = float(args.get("--rate") or 1)
        pause_us = max(1, int(1e6 / (senders * rate)))
        bursts = min(2000, max(200, int(duration * 1e6 / pause_us)))
        cmd = [exe, str(clients - 1), str(pause_us), str(bursts)]
    print("$ " + " ".join(cmd), flush=True)
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True,
                         check=True).stdout
    sys.stdout.write(out)
    result = {"label": "floor", "mode": "floor"}
    for line in out.splitlines():
        cells = line.split()
        if " to read:" in line and "p99.9" in line:
            def us(key):
                return int(float(cells[cells.index(key) + 1]) * 1000)
            result["latency"] = {"p50_us": us("p50"), "p99_us": us("p99"),
                                 "p999_us": us("p99.9"), "max_us": us("max")}
        elif line.strip().startswith("relay CPU"):
            # B9's: the relay's CPU as the servers' column, over the span
            # it relayed.
            cpu_s, span_s = float(cells[2]), float(cells[5])
            result["server_cpu_s"] = cpu_s
            result["window_s"] = span_s
            result["delivered_per_s"] = int(cells[cells.index("deliveries") - 1]) / span_s
    if "latency" not in result:
        return {"label": "floor", "failed": "no floor figures"}
    return result


# As loadgen's summary: at this share of its core the generator, not the
# server, sets the latency and losses of a room or DM run.
GENERATOR_SATURATED = 0.95


def generator_saturated(r):
    """Whether the generator saturated its core in round `r`: "window"
    over the window, "storm" from a reconnect storm's drop to the last back
    (over the window, half a second of a full core does not show), "" if
    not, None for a round without the figures (idle, the floor)."""
    v, span = r.get("gen_cpu_s"), r.get("window_s")
    if r.get("mode") in ("idle", "floor") or v is None or not span:
        return None
    if (r.get("storm_gen_cpu_share") or 0) >= GENERATOR_SATURATED:
        return "storm"
    return "window" if v / span >= GENERATOR_SATURATED else ""


def table(results):
    def ms(r, part, key):
        v = (r.get(part) or {}).get(key)
        return "-" if v is None else f"{v / 1000:.3f}"

    def f(v, fmt="{:.0f}"):
        return "-" if v is None else fmt.format(v)

    def share(r, key):
        v = r.get(key)
        span = r.get("connect_s") if r.get("mode") == "idle" else r.get("window_s")
        if v is None or not span:
            return "-"
        return f"{v:.2f} s ({100 * v / span:.0f}%)"

    rows = [
        ("connections", lambda r: f(r.get("connections"))),
        ("connect s", lambda r: f(r.get("connect_s"), "{:.2f}")),
        ("login p50 ms", lambda r: ms(r, "login", "p50_us")),
        ("login p99 ms", lambda r: ms(r, "login", "p99_us")),
    ]
    ok = [r for r in results if "failed" not in r]
    if any(r.get("mode") != "idle" for r in ok):
        rows += [
            ("offered deliveries/s", lambda r: f(r.get("offered_per_s"))),
            ("delivered/s", lambda r: f(r.get("delivered_per_s"))),
            ("expected", lambda r: f(r.get("expected"))),
            ("lost", lambda r: f(r.get("lost"))),
            ("latency p50 ms", lambda r: ms(r, "latency", "p50_us")),
            ("latency p99 ms", lambda r: ms(r, "latency", "p99_us")),
            ("latency p99.9 ms", lambda r: ms(r, "latency", "p999_us")),
            ("latency max ms", lambda r: ms(r, "latency", "max_us")),
            ("send lag p99 ms", lambda r: ms(r, "send_lag", "p99_us")),
            ("messages per read()",
             lambda r: f(r.get("deliveries_per_read"), "{:.1f}")),
        ]
    rows += [
        ("server CPU", lambda r: share(r, "server_cpu_s")),
        ("server CPU us/delivery",
         lambda r: f(cpu_per_delivery_us(r), "{:.3f}")),
        ("server RSS KiB", lambda r: f(r.get("server_rss_kib"))),
    ]
    if any("log_messages" in r for r in ok):
        rows += [
            ("chat.log messages at end", lambda r: f(r.get("log_messages"))),
            ("history rows at end", lambda r: f(r.get("history_rows"))),
            ("history rows settled", lambda r: f(r.get("history_rows_settled"))),
            ("store caught up s", lambda r: f(r.get("store_caught_up_s"), "{:.2f}")),
        ]
    if any(r.get("mode") == "idle" for r in ok):
        def left_share(r):
            b, a = r.get("server_rss_before_kib"), r.get("server_rss_left_kib")
            return "-" if not b or a is None else f"{100 * (a - b) / b:+.1f}%"
        rows += [
            ("RSS per conn KiB",
             lambda r: f(r.get("rss_per_conn_kib"), "{:.1f}")),
            ("RSS nobody connected KiB",
             lambda r: f(r.get("server_rss_before_kib"))),
            ("RSS after all left KiB",
             lambda r: f(r.get("server_rss_left_kib"))),
            ("  against nobody connected", left_share),
        ]
    else:
        rows.append(("RSS at window start KiB",
                     lambda r: f(r.get("server_rss_before_kib"))))
    if any(r.get("stall_reason") is not None for r in ok):
        rows += [
            ("slow reader dropped at s",
             lambda r: f(r.get("stall_dropped_s"), "{:.2f}")),
            ("slow reader reason",
             lambda r: (r.get("stall_reason") or "-")[:20]),
        ]
    if any(r.get("storm_logins") for r in ok):
        def per_s(r):
            n, secs = r.get("storm_logins") or 0, r.get("storm_s") or 0
            return f"{n / secs:.1f}" if secs else "-"
        rows += [
            ("storm logins", lambda r: f(r.get("storm_logins"))),
            ("storm logins/s", per_s),
            ("storm login p99 ms", lambda r: ms(r, "storm_login", "p99_us")),
        ]
    if any(r.get("latency_storm") for r in ok):
        rows += [
            ("reconnected", lambda r: f(r.get("reconnected"))),
            ("all back after s", lambda r: f(r.get("reconnect_s"), "{:.2f}")),
            ("reconnect login p99 ms",
             lambda r: ms(r, "reconnect_login", "p99_us")),
            ("others p99 before ms", lambda r: ms(r, "latency_calm", "p99_us")),
            ("others p99 in storm ms",
             lambda r: ms(r, "latency_storm", "p99_us")),
        ]
    if any(r.get("rss_series_kib") for r in ok):
        def series(r, i):
            v = r.get("rss_series_kib") or []
            return f(v[i][1]) if v else "-"
        rows += [
            ("RSS first sample KiB", lambda r: series(r, 0)),
            ("RSS last sample KiB", lambda r: series(r, -1)),
            ("RSS slope MB/min", lambda r: f(
                None if r.get("rss_slope_kib_per_min") is None
                else r["rss_slope_kib_per_min"] / 1024, "{:.3f}")),
        ]
    rows.append(("generator CPU", lambda r: share(r, "gen_cpu_s")))

    def saturated(r):
        return {None: "-", "": "no", "window": "YES",
                "storm": "YES (storm)"}[generator_saturated(r)]

    if any(r.get("mode") != "idle" for r in ok):
        rows.append(("generator saturated", saturated))
    if any(r.get("cpu_stall_max_ms") for r in ok):
        rows += [
            ("CPU stall max ms (0/1)", lambda r: "/".join(
                f"{v:.1f}" for v in r.get("cpu_stall_max_ms") or []) or "-"),
            (f"stalls over {STALL_MS} ms (0/1)", lambda r: "/".join(
                f"{v:.0f}" for v in r.get("cpu_stalls_over_5ms") or []) or "-"),
        ]
    width = max(len(r[0]) for r in rows)
    head = f"{'':{width}}" + "".join(f"  {r.get('label', '?'):>20}" for r in results)
    print(head)
    for name, get in rows:
        cells = []
        for r in results:
            cells.append(r["failed"][:20] if "failed" in r else get(r))
        print(f"{name:{width}}" + "".join(f"  {c:>20}" for c in cells))


def median_result(runs):
    """One result whose every figure is the median of that figure over
    `runs` (a run whose p99 was the median may have had another p50)."""
    ok = [r for r in runs if "failed" not in r]
    if not ok:
        return runs[0]

    def med(values):
        v = sorted(x for x in values
                   if isinstance(x, (int, float)) and not isinstance(x, bool))
        return v[len(v) // 2] if v else None

    out = dict(ok[0])
    for k, v in ok[0].items():
        if isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            out[k] = med(r.get(k) for r in ok)
        elif isinstance(v, dict):
            out[k] = {kk: med((r.get(k) or {}).get(kk) for r in ok) for kk in v}
        elif isinstance(v, list):
            out[k] = [med(r[k][i] for r in ok if len(r.get(k) or []) > i)
                      for i in range(len(v))]
    out["label"] = f"{ok[0].get('label', '?')} median/{len(ok)}"
    return out


def main(argv):
    opts = {"tls": False, "pin": True, "build": True,
            "tracker_password": False, "out": None, "log_sync": None,
            "servers": ["tracker", "ngircd", "inspircd"], "repeat": 1,
            "stall_probe": True, "floor": True}
    i = 0
    while i < len(argv) and argv[i].startswith("--"):
        a = argv[i]
        if a == "--tls":
            opts["tls"] = True
        elif a == "--no-pin":
            opts["pin"] = False
        elif a == "--no-stall-probe":
            opts["stall_probe"] = False
        elif a == "--no-floor":
            opts["floor"] = False
        elif a == "--no-build":
            opts["build"] = False
        elif a == "--tracker-password":
            opts["tracker_password"] = True
        elif a == "--log-sync":
            i += 1
            opts["log_sync"] = argv[i]
        elif a == "--servers":
            i += 1
            opts["servers"] = argv[i].split(",")
        elif a == "--history-cost":
            opts["servers"] = ["tracker", "tracker-no-store"]
        elif a == "--repeat":
            i += 1
            opts["repeat"] = max(1, int(argv[i]))
        elif a == "--out":
            i += 1
            opts["out"] = argv[i]
        elif a in ("-h", "--help"):
            print(__doc__)
            return 0
        else:
            sys.exit(f"compare.py: unknown option {a}")
        i += 1
    if i >= len(argv) or argv[i] not in WORKLOADS:
        print(__doc__)
        return 2
    workload = argv[i]
    opts.update(IMPLIED.get(workload, {}))
    args = dict(WORKLOADS[workload])
    extra = parse_extra(argv[i + 1:])
    if "--rate" in extra:
        args.pop("--offered", None)
    if "--offered" in extra:
        args.pop("--rate", None)
    args.update(extra)
    opts["concurrency_given"] = "--concurrency" in extra
    if opts["build"]:
        subprocess.run(["cargo", "build", "--release", "--examples", "--bins"],
                       cwd=ROOT, check=True)
    if opts["pin"] and (os.cpu_count() or 1) < 2:
        print("one CPU only: not pinning", file=sys.stderr)
        opts["pin"] = False
    if opts["stall_probe"] and not (opts["pin"] and ensure_cyclictest()):
        print("no stall probe (needs root, two CPUs pinned and cyclictest)",
              file=sys.stderr)
        opts["stall_probe"] = False
    print(f"workload {workload}: "
          + " ".join(k if v is None else f"{k} {v}" for k, v in args.items())
          + (" (TLS)" if opts["tls"] else ""), flush=True)
    # What bench/suite_table.py groups a run's rounds by.
    run_name = " ".join(argv[i:]) + (" (TLS)" if opts["tls"] else "")
    rounds = []
    for n in range(opts["repeat"]):
        results = []
        for server in opts["servers"]:
            r = run_one(server, args, opts)
            r["workload"] = workload
            r["run"] = run_name
            results.append(r)
            if opts["out"]:
                with open(opts["out"], "a") as f:
                    f.write(json.dumps(r) + "\n")
            print(flush=True)
        if workload in ("b2", "b9") and opts["floor"]:
            r = run_floor(workload, args)
            r["workload"] = workload
            r["run"] = run_name
            results.append(r)
            if opts["out"]:
                with open(opts["out"], "a") as f:
                    f.write(json.dumps(r) + "\n")
        if opts["repeat"] > 1:
            print(f"--- round {n + 1} of {opts['repeat']}")
        table(results)
        history_cost(results)
        rounds.append(results)
    if opts["repeat"] > 1:
        print()
        print(f"--- median of {opts['repeat']} rounds (each figure on its own)")
        per_server = [[rd[j] for rd in rounds] for j in range(len(rounds[0]))]
        medians = [median_result(runs) for runs in per_server]
        table(medians)
        history_cost(medians)
        for runs in per_server:
            done = sorted((r for r in runs
                           if "failed" not in r and r.get("latency")),
                          key=lambda r: r["latency"]["p99_us"])
            if done:
                # With each round's worst CPU stall, so a slow round can be
                # told from a stalled one.
                print(f"{runs[0].get('label', '?')}: p99 ms per round "
                      + ", ".join(
                          f"{r['latency']['p99_us'] / 1000:.2f}"
                          + (f" (stall {max(r['cpu_stall_max_ms']):.1f})"
                             if r.get("cpu_stall_max_ms") else "")
                          for r in done))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
