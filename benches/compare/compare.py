#!/usr/bin/env python3
"""Whole-program comparison of coffre with restic, rustic and borg.

One run, the same data for every tool:

  1. make-dataset writes a day-0 tree once (a synthetic association PC);
  2. for each tool in turn, on a fresh copy of that tree at the same path:
     init (not in the table), first backup, unchanged rerun, make-dataset
     --day 1 (not timed), day-1 backup, full restore of the latest snapshot
     into an empty directory, then a byte-for-byte check of the restored tree
     against the day-1 tree (not timed; a mismatch fails the run);
  3. a Markdown table (and --json-out) of wall time and peak resident memory
     per phase, with coffre's ratio to the best peer.

Each tool runs its whole sequence before the next one starts (no interleaving
per phase); the page cache is not dropped (the tree was just copied, so it is
warm for every tool alike); `sync` runs, untimed, before every phase so that
one phase's write-back is not charged to the next.

Peak memory is the child's ru_maxrss from wait4(2). coffre is a client and a
server: the server's peak is its VmHWM, reset before every phase through
/proc/PID/clear_refs, and the table shows client + server.

With --wan LINE[,LINE...] (Linux, root) the same sequence runs for coffre and
restic over an emulated association line: `coffre-wan netns` makes a client
and a server network namespace joined by the line, coffre-server and restic's
REST server (`rclone serve restic`) run in the server's, the clients in the
client's; the table adds how much of the line each phase used.

Standard library only (python 3.11). See README.md in this directory.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MAKE_DATASET = REPO_ROOT.parent / "shared" / "bench" / "make-dataset"
ALL_TOOLS = ("coffre", "restic", "rustic", "borg")
PEERS = ("restic", "rustic", "borg")
PASSWORD = "coffre-compare-benchmark-passphrase"

PHASES = ("first", "unchanged", "day1", "restore")
PHASE_TITLES = {
    "first": "first backup",
    "unchanged": "unchanged rerun",
    "day1": "day-1 backup",
    "restore": "full restore",
}
BACKUP_PHASES = ("first", "unchanged", "day1")


class BenchError(Exception):
    """A step failed: the message says which and where its log is."""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# running and measuring a child


@dataclass
class Measure:
    wall_s: float
    user_s: float
    sys_s: float
    peak_rss_bytes: int
    # coffre only: the server during the same phase
    server_peak_rss_bytes: int | None = None
    server_cpu_s: float | None = None
    # --wan only: IP bytes that crossed the line each way during the phase
    line_up_bytes: int | None = None
    line_down_bytes: int | None = None

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s + (self.server_cpu_s or 0.0)

    @property
    def total_peak_rss_bytes(self) -> int:
        return self.peak_rss_bytes + (self.server_peak_rss_bytes or 0)

    def to_json(self) -> dict:
        d = {
            "wall_s": round(self.wall_s, 3),
            "user_s": round(self.user_s, 3),
            "sys_s": round(self.sys_s, 3),
            "peak_rss_bytes": self.peak_rss_bytes,
        }
        if self.server_peak_rss_bytes is not None:
            d["server_peak_rss_bytes"] = self.server_peak_rss_bytes
            d["server_cpu_s"] = round(self.server_cpu_s or 0.0, 3)
            d["total_peak_rss_bytes"] = self.total_peak_rss_bytes
        if self.line_up_bytes is not None:
            d["line_up_bytes"] = self.line_up_bytes
            d["line_down_bytes"] = self.line_down_bytes
        return d


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text[-lines:])


def measured(cmd: list[str], *, env: dict, cwd: Path | None, logfile: Path) -> Measure:
    """Run cmd to completion; wall time, CPU and peak RSS of that child alone (wait4)."""
    with open(logfile, "ab") as out:
        out.write(("$ " + " ".join(cmd) + "\n").encode())
        out.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise BenchError(
            f"`{' '.join(cmd)}` exited with {proc.returncode}; log {logfile}:\n{tail(logfile)}"
        )
    # Linux: ru_maxrss in KiB
    return Measure(wall, ru.ru_utime, ru.ru_stime, ru.ru_maxrss * 1024)


def run(cmd: list[str], *, env: dict | None = None, cwd: Path | None = None, logfile: Path | None = None,
        capture: bool = False) -> str:
    """Run an untimed helper step; fail with its output."""
    res = subprocess.run(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True)
    if logfile is not None:
        with open(logfile, "ab") as out:
            out.write(("$ " + " ".join(cmd) + "\n").encode() + (b"" if capture else res.stdout) + res.stderr)
    if res.returncode != 0:
        raise BenchError(
            f"`{' '.join(cmd)}` exited with {res.returncode}:\n"
            + (res.stdout + res.stderr).decode(errors="replace")[-3000:]
        )
    return res.stdout.decode(errors="replace")


def version_of(cmd: list[str]) -> str:
    try:
        res = subprocess.run(cmd, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unknown ({e})"
    out = (res.stdout or res.stderr).decode(errors="replace").strip()
    return out.splitlines()[0] if out else "unknown"


# --------------------------------------------------------------------------
# the tree: make-dataset, statistics, byte-for-byte comparison


def manifest(root: Path) -> dict[str, tuple]:
    """Every entry under root (symlinks not followed): kind, and content hash / link target / mode."""
    out: dict[str, tuple] = {}
    stack = [root]
    while stack:
        d = stack.pop()
        with os.scandir(d) as it:
            for e in it:
                rel = os.path.relpath(e.path, root)
                st = e.stat(follow_symlinks=False)
                mode = stat.S_IMODE(st.st_mode)
                if stat.S_ISLNK(st.st_mode):
                    out[rel] = ("symlink", os.readlink(e.path))
                elif stat.S_ISDIR(st.st_mode):
                    out[rel] = ("dir", mode)
                    stack.append(Path(e.path))
                elif stat.S_ISREG(st.st_mode):
                    with open(e.path, "rb") as f:
                        digest = hashlib.file_digest(f, "sha256").hexdigest()
                    out[rel] = ("file", st.st_size, digest, mode)
                else:
                    out[rel] = ("other", stat.S_IFMT(st.st_mode))
    return out


def tree_stats(m: dict[str, tuple]) -> dict:
    files = [v for v in m.values() if v[0] == "file"]
    return {
        "bytes": sum(v[1] for v in files),
        "files": len(files),
        "dirs": sum(1 for v in m.values() if v[0] == "dir"),
        "symlinks": sum(1 for v in m.values() if v[0] == "symlink"),
    }


def compare_trees(expected: dict[str, tuple], got: dict[str, tuple]) -> tuple[list[str], list[str]]:
    """(errors, warnings): content, kind, size and link targets must match; modes only warn."""
    errors, warnings = [], []
    for p in sorted(expected.keys() - got.keys()):
        errors.append(f"missing in restore: {p}")
    for p in sorted(got.keys() - expected.keys()):
        errors.append(f"extra in restore: {p}")
    for p in sorted(expected.keys() & got.keys()):
        e, g = expected[p], got[p]
        if e[0] != g[0]:
            errors.append(f"{p}: is a {g[0]}, expected a {e[0]}")
        elif e[0] == "file":
            if e[1] != g[1]:
                errors.append(f"{p}: {g[1]} bytes, expected {e[1]}")
            elif e[2] != g[2]:
                errors.append(f"{p}: content differs (sha256)")
            if e[3] != g[3]:
                warnings.append(f"{p}: mode {g[3]:o}, expected {e[3]:o}")
        elif e[0] == "symlink" and e[1] != g[1]:
            errors.append(f"{p}: link to {g[1]!r}, expected {e[1]!r}")
        elif e[0] == "dir" and e[1] != g[1]:
            warnings.append(f"{p}/: mode {g[1]:o}, expected {e[1]:o}")
    return errors, warnings


def dir_bytes(root: Path) -> int:
    total = 0
    for d, _, files in os.walk(root):
        for f in files:
            try:
                total += os.lstat(os.path.join(d, f)).st_size
            except OSError:
                pass
    return total


def copy_tree(src: Path, dst: Path) -> None:
    # cp -a keeps modes, mtimes and the symlink; shutil.copytree would do too, slower
    run(["cp", "-a", "--", str(src), str(dst)])


# --------------------------------------------------------------------------
# the tools


@dataclass
class Ctx:
    work: Path
    tree: Path          # the dataset, same path for every tool
    home: Path          # HOME / XDG dirs of every tool: nothing leaks into the user's own
    base_env: dict = field(default_factory=dict)
    wan: "Wan | None" = None  # the emulated line, or None: everything on loopback

    def client(self, cmd: list[str]) -> list[str]:
        """cmd as run on the PC: in the client's namespace over a line."""
        return self.wan.client_prefix() + cmd if self.wan else cmd

    def server(self, cmd: list[str]) -> list[str]:
        """cmd as run on the server host."""
        return self.wan.server_prefix() + cmd if self.wan else cmd

    @property
    def server_host(self) -> str:
        return self.wan.server_ip if self.wan else "127.0.0.1"


# --------------------------------------------------------------------------
# the line (--wan): coffre-wan netns


COUNTER_KEYS = ("packets", "bytes", "lost", "queue_full", "down", "too_big")


class Wan:
    """A `coffre-wan netns` running: two namespaces joined by the emulated line."""

    CLIENT_NS = "coffre-cmp-c"
    SERVER_NS = "coffre-cmp-s"

    def __init__(self, binary: str, profile: str, logfile: Path, tcp: str):
        self.profile = profile
        self.proc = subprocess.Popen(
            [binary, "netns", "--client", self.CLIENT_NS, "--server", self.SERVER_NS, "--profile", profile],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=open(logfile, "ab"), text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("ready "):
            self.proc.wait(timeout=10)
            raise BenchError(f"coffre-wan netns did not start (exit {self.proc.returncode}):\n{tail(logfile)}")
        words = dict(w.split("=", 1) for w in line.split() if "=" in w and not w.startswith("("))
        self.up_bps = int(words["up_bps"])
        self.down_bps = int(words["down_bps"])
        self.server_ip = line.split("server=")[1].split()[1]
        # TCP's congestion control is the namespace's own: both hosts use `tcp` (a Windows PC and
        # most Linux servers use Cubic; this machine may default to something else). A namespace
        # may only pick one that the host allows.
        try:
            allowed = Path("/proc/sys/net/ipv4/tcp_allowed_congestion_control")
            names = allowed.read_text().split()
            if tcp not in names:
                run(["sysctl", "-q", "-w", f"net.ipv4.tcp_allowed_congestion_control={' '.join(names + [tcp])}"])
            for prefix in (self.client_prefix(), self.server_prefix()):
                run(prefix + ["sysctl", "-q", "-w", f"net.ipv4.tcp_congestion_control={tcp}"])
        except BaseException:
            self.stop()
            raise

    def client_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.CLIENT_NS]

    def server_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.SERVER_NS]

    def counters(self) -> dict[str, dict[str, int]]:
        """What crossed the line so far, each way (SIGUSR1 makes coffre-wan print it)."""
        self.proc.send_signal(signal.SIGUSR1)
        line = self.proc.stdout.readline()
        out = {}
        for part in line.split("|"):
            words = part.split()
            if not words:
                continue
            out[words[0]] = {k: int(v) for k, v in (w.split("=") for w in words[1:])}
        if set(out) != {"up", "down"}:
            raise BenchError(f"coffre-wan printed {line!r}, expected its counters")
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Tool:
    name = "?"

    def __init__(self, ctx: Ctx, binaries: dict[str, str]):
        self.ctx = ctx
        self.bin = binaries
        self.dir = ctx.work / self.name
        self.repo = self.dir / "repo"
        self.logfile = self.dir / "log.txt"
        self.env = dict(ctx.base_env)

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)

    def version(self) -> str:
        raise NotImplementedError

    def init(self) -> Measure:
        raise NotImplementedError

    def backup(self, phase: str) -> Measure:
        raise NotImplementedError

    def restore(self, target: Path) -> tuple[Measure, Path]:
        """Restore the latest snapshot into the empty target; returns where the tree landed."""
        raise NotImplementedError

    def repo_bytes(self) -> int:
        return dir_bytes(self.repo)

    def notes(self) -> str:
        return ""

    def cleanup(self) -> None:
        pass

    def m(self, cmd: list[str], cwd: Path | None = None) -> Measure:
        wan = self.ctx.wan
        before = wan.counters() if wan else None
        meas = measured(self.ctx.client(cmd), env=self.env, cwd=cwd, logfile=self.logfile)
        if wan:
            after = wan.counters()
            meas.line_up_bytes = after["up"]["bytes"] - before["up"]["bytes"]
            meas.line_down_bytes = after["down"]["bytes"] - before["down"]["bytes"]
        return meas


def inside(target: Path, tree: Path) -> Path:
    """Where a tool that keeps absolute paths puts `tree` under `target`."""
    return target / str(tree).lstrip("/")


class Restic(Tool):
    name = "restic"

    def prepare(self) -> None:
        super().prepare()
        self.rest: subprocess.Popen | None = None
        if self.ctx.wan:
            # over the line: restic's REST protocol, served by rclone on the server host
            self.rest_port = 8000
            location = f"rest:http://{self.ctx.server_host}:{self.rest_port}/"
        else:
            location = str(self.repo)
        self.env.update(RESTIC_REPOSITORY=location, RESTIC_PASSWORD=PASSWORD)
        self.cache = self.dir / "cache"
        help_init = run([self.bin["restic"], "help", "init"])
        # repository format 2 (compression) since 0.14; "stable" meant 1 until 0.16
        self.repo_v2 = "--repository-version" in help_init
        self.extra_init = ["--repository-version", "2"] if self.repo_v2 else []

    def version(self) -> str:
        return version_of([self.bin["restic"], "version"])

    def notes(self) -> str:
        fmt = ("repository v2, compression auto" if self.repo_v2
               else "repository v1 (no compression in this version)")
        if self.ctx.wan:
            fmt += f"; over REST: {version_of([self.bin['rclone'], 'version'])} `serve restic` on the server host"
        return fmt

    def g(self) -> list[str]:
        return [self.bin["restic"], "--cache-dir", str(self.cache)]

    def init(self) -> Measure:
        if self.ctx.wan:
            self.repo.mkdir(parents=True, exist_ok=True)
            out = open(self.dir / "rest-server-log.txt", "ab")
            self.rest = subprocess.Popen(
                self.ctx.server([self.bin["rclone"], "serve", "restic", "--addr",
                                 f"{self.ctx.server_host}:{self.rest_port}", str(self.repo)]),
                env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
            out.close()
            wait_listening(self.rest, "rclone serve restic", "tcp", self.rest_port, self.dir / "rest-server-log.txt")
        return self.m(self.g() + ["init"] + self.extra_init)

    def cleanup(self) -> None:
        stop_process(self.rest, "rclone serve restic")

    def backup(self, phase: str) -> Measure:
        return self.m(self.g() + ["backup", str(self.ctx.tree)])

    def restore(self, target: Path) -> tuple[Measure, Path]:
        return self.m(self.g() + ["restore", "latest", "--target", str(target)]), inside(target, self.ctx.tree)


class Rustic(Tool):
    name = "rustic"

    def prepare(self) -> None:
        super().prepare()
        self.env.update(RUSTIC_REPOSITORY=str(self.repo), RUSTIC_PASSWORD=PASSWORD,
                        RUSTIC_CACHE_DIR=str(self.dir / "cache"), RUSTIC_NO_PROGRESS="true")

    def version(self) -> str:
        return version_of([self.bin["rustic"], "--version"])

    def notes(self) -> str:
        return "default: repository v2, zstd level 3"

    def g(self) -> list[str]:
        return [self.bin["rustic"], "-r", str(self.repo), "--cache-dir", str(self.dir / "cache"), "--no-progress"]

    def init(self) -> Measure:
        return self.m(self.g() + ["init"])

    def backup(self, phase: str) -> Measure:
        return self.m(self.g() + ["backup", str(self.ctx.tree)])

    def restore(self, target: Path) -> tuple[Measure, Path]:
        # `latest:PATH` restores that directory's content into target
        spec = f"latest:{self.ctx.tree}"
        return self.m(self.g() + ["restore", spec, str(target)]), target


class Borg(Tool):
    name = "borg"

    def prepare(self) -> None:
        super().prepare()
        self.env.update(BORG_PASSPHRASE=PASSWORD, BORG_BASE_DIR=str(self.dir / "base"),
                        BORG_REPO=str(self.repo))

    def version(self) -> str:
        return version_of([self.bin["borg"], "--version"])

    def notes(self) -> str:
        return "repokey-blake2, zstd,3"

    def init(self) -> Measure:
        return self.m([self.bin["borg"], "init", "--encryption=repokey-blake2", str(self.repo)])

    def backup(self, phase: str) -> Measure:
        return self.m([self.bin["borg"], "create", "--compression", "zstd,3",
                       f"{self.repo}::{phase}", str(self.ctx.tree)])

    def restore(self, target: Path) -> tuple[Measure, Path]:
        # extracts into the current directory, the leading / stripped
        return self.m([self.bin["borg"], "extract", f"{self.repo}::day1"], cwd=target), inside(target, self.ctx.tree)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(pid: int, proto: str, port: int) -> bool:
    """Whether a socket of `proto` (udp or tcp) is bound to port in pid's network namespace."""
    want = f":{port:04X}"
    for table in (f"/proc/{pid}/net/{proto}", f"/proc/{pid}/net/{proto}6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    # tcp: only a listening socket (state 0A)
                    if cols[1].endswith(want) and (proto == "udp" or cols[3] == "0A"):
                        return True
        except OSError:
            pass
    return False


def wait_listening(proc: subprocess.Popen, name: str, proto: str, port: int, logfile: Path) -> None:
    deadline = time.monotonic() + 60
    while not listening(proc.pid, proto, port):
        if proc.poll() is not None:
            raise BenchError(f"{name} exited with {proc.returncode}:\n{tail(logfile)}")
        if time.monotonic() > deadline:
            raise BenchError(f"nothing listens on {proto.upper()} {port} after 60 s:\n{tail(logfile)}")
        time.sleep(0.05)


def stop_process(proc: "subprocess.Popen | None", name: str) -> None:
    """SIGTERM, then SIGKILL after 20 s."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        log(f"{name} did not stop within 20 s of SIGTERM: killing it")
        proc.kill()
        proc.wait()


class Coffre(Tool):
    name = "coffre"

    def prepare(self) -> None:
        super().prepare()
        self.srv = self.dir / "server"
        self.cfg = self.dir / "client" / "config.toml"
        self.cfg.parent.mkdir(parents=True, exist_ok=True)
        self.repo = self.srv  # the stored data is the server's data directory
        self.env.update(COFFRE_PASSPHRASE=PASSWORD)
        self.server: subprocess.Popen | None = None
        self.server_log = self.dir / "server-log.txt"
        self.server_rusage = None
        c, s = self.bin["coffre"], self.bin["coffre-server"]
        top = run([c, "--help"])
        missing = [sub for sub in ("enrol", "backup", "restore") if not any(
            line.strip().startswith(sub + " ") or line.strip() == sub for line in top.splitlines())]
        if missing:
            raise BenchError(f"{c} has no {', '.join(missing)} command yet (`coffre --help`):\n{top}")
        self.enrol_has_path = "--path" in run([c, "enrol", "--help"])
        # no progress display, like the peers (rustic --no-progress, restic and borg off a terminal)
        self.backup_quiet = ["--quiet"] if "--quiet" in run([c, "backup", "--help"]) else []
        self.restore_quiet = ["--quiet"] if "--quiet" in run([c, "restore", "--help"]) else []
        self.init_has_public = "--public-address" in run([s, "init", "--help"])

    def version(self) -> str:
        v = version_of([self.bin["coffre"], "--version"])
        if not self.bin.get("coffre-built-here"):
            return f"{v} (binaries from {Path(self.bin['coffre']).parent})"
        try:
            commit = subprocess.run(["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty"],
                                    capture_output=True, text=True).stdout.strip()
        except OSError:
            commit = ""
        return f"{v} ({commit})" if commit else v

    def notes(self) -> str:
        if self.ctx.wan:
            return f"QUIC over the line ({self.ctx.wan.profile})"
        return "client and server on this machine, QUIC over 127.0.0.1"

    def server_cmd(self, *args: str) -> str:
        return run([self.bin["coffre-server"], *args, "--data", str(self.srv)], env=self.env,
                   logfile=self.server_log, capture=True)

    def init(self) -> Measure:
        port = free_udp_port()
        self.port = port
        host = self.ctx.server_host
        extra = ["--public-address", f"{host}:{port}"] if self.init_has_public else []
        self.server_cmd("init", "--listen", f"{host}:{port}", *extra)
        self.server_cmd("subscriber", "add", "bench", "--quota", "1TiB")
        token = self.server_cmd("device", "add", "bench", "pc", "--role", "admin").strip()
        if not token or len(token.split()) != 1:
            raise BenchError(f"`coffre-server device add` printed {token!r}, expected the token alone")
        out = open(self.server_log, "ab")
        self.server = subprocess.Popen(self.ctx.server([self.bin["coffre-server"], "run", "--data", str(self.srv)]),
                                       env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        out.close()
        wait_listening(self.server, "coffre-server", "udp", port, self.server_log)
        cmd = [self.bin["coffre"], "enrol", token, "--config", str(self.cfg)]
        if self.enrol_has_path:
            cmd += ["--path", str(self.ctx.tree)]
        return self.with_server(cmd)

    # server-side accounting around one client command
    def server_status(self) -> tuple[int, float]:
        assert self.server is not None
        pid = self.server.pid
        hwm = 0
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) * 1024
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        return hwm, cpu

    def with_server(self, cmd: list[str], cwd: Path | None = None) -> Measure:
        assert self.server is not None
        if self.server.poll() is not None:
            raise BenchError(f"coffre-server is gone (exit {self.server.returncode}):\n{tail(self.server_log)}")
        with open(f"/proc/{self.server.pid}/clear_refs", "w") as f:
            f.write("5")  # reset the peak RSS (VmHWM) to the current RSS
        _, cpu0 = self.server_status()
        meas = self.m(cmd, cwd)
        hwm, cpu1 = self.server_status()
        meas.server_peak_rss_bytes = hwm
        meas.server_cpu_s = cpu1 - cpu0
        return meas

    def backup(self, phase: str) -> Measure:
        cmd = [self.bin["coffre"], "backup", "--config", str(self.cfg), *self.backup_quiet]
        if not self.enrol_has_path:
            cmd.insert(2, str(self.ctx.tree))
        return self.with_server(cmd)

    def restore(self, target: Path) -> tuple[Measure, Path]:
        cmd = [self.bin["coffre"], "restore", "latest", "--path", str(self.ctx.tree),
               "--target", str(target), "--config", str(self.cfg), *self.restore_quiet]
        return self.with_server(cmd), target / self.ctx.tree.name

    def cleanup(self) -> None:
        if self.server is None or self.server.returncode is not None:
            return
        self.server.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            pid, status, ru = os.wait4(self.server.pid, os.WNOHANG)
            if pid:
                self.server.returncode = os.waitstatus_to_exitcode(status)
                self.server_rusage = ru
                return
            time.sleep(0.05)
        log("coffre-server did not stop within 20 s of SIGTERM: killing it")
        self.server.kill()
        self.server.wait()


TOOL_CLASSES = {"coffre": Coffre, "restic": Restic, "rustic": Rustic, "borg": Borg}


# --------------------------------------------------------------------------
# the run


@dataclass
class Result:
    name: str
    version: str = ""
    notes: str = ""
    phases: dict[str, Measure] = field(default_factory=dict)
    repo_bytes: int | None = None
    error: str | None = None
    verified: bool | None = None
    restore_warnings: list[str] = field(default_factory=list)


def run_tool(tool: Tool, ctx: Ctx, pristine: Path, make_dataset: Path, scale: float,
             day0_manifest: dict, reference: dict | None, keep: bool) -> tuple[Result, dict | None]:
    res = Result(tool.name)
    day1_manifest = None
    try:
        tool.prepare()
        res.version = tool.version()
        res.notes = tool.notes()
        log(f"{tool.name} {res.version}: copying the day-0 tree to {ctx.tree}")
        if ctx.tree.exists():
            shutil.rmtree(ctx.tree)
        copy_tree(pristine, ctx.tree)
        os.sync()
        res.phases["init"] = tool.init()
        for phase in PHASES:
            if phase == "day1":
                log(f"{tool.name}: make-dataset --day 1 (not timed)")
                run([sys.executable, str(make_dataset), str(ctx.tree), "--scale", str(scale), "--day", "1"])
            if phase == "restore":
                day1_manifest = manifest(ctx.tree)
                if reference is not None and day1_manifest != reference:
                    log(f"WARNING: {tool.name}'s day-1 tree differs from the first tool's: make-dataset "
                        "is not deterministic here, the tools did not see the same data")
                target = tool.dir / "restore"
                target.mkdir()
            os.sync()
            log(f"{tool.name}: {PHASE_TITLES[phase]}")
            if phase == "restore":
                meas, restored = tool.restore(target)
            else:
                meas = tool.backup(phase)
            res.phases[phase] = meas
            extra = ""
            if meas.server_peak_rss_bytes is not None:
                extra = f" + server {meas.server_peak_rss_bytes / 1e6:.0f} MB, {meas.server_cpu_s:.1f} s CPU"
            log(f"{tool.name}: {PHASE_TITLES[phase]}: {meas.wall_s:.2f} s, "
                f"peak {meas.peak_rss_bytes / 1e6:.0f} MB{extra}")
        res.repo_bytes = tool.repo_bytes()
        log(f"{tool.name}: verifying the restore (not timed)")
        if not restored.is_dir():
            raise BenchError(f"restore of {tool.name}: {restored} does not exist; "
                             f"the target holds {sorted(os.listdir(target))[:10]}")
        restored_manifest = manifest(restored)
        errors, warnings = compare_trees(day1_manifest, restored_manifest)
        res.restore_warnings = warnings[:20]
        if warnings:
            log(f"{tool.name}: restore: {len(warnings)} mode differences (not an error), e.g. {warnings[0]}")
        if errors:
            res.verified = False
            hint = ""
            if not compare_trees(day0_manifest, restored_manifest)[0]:
                hint = (" (it is the day-0 tree: the restore took an older snapshot than the day-1 "
                        "backup; see the restore's output in the log)")
            raise BenchError(f"RESTORE MISMATCH for {tool.name}: {len(errors)} differences between "
                             f"{restored} and the day-1 tree{hint}:\n  " + "\n  ".join(errors[:30])
                             + f"\nend of the log {tool.logfile}"
                             + ("" if keep else " (removed at the end; --keep keeps it)")
                             + f":\n{tail(tool.logfile, 4)}")
        res.verified = True
        log(f"{tool.name}: restore verified: byte-identical to the day-1 tree")
    except BenchError as e:
        res.error = str(e)
        log(f"{tool.name} FAILED: {str(e).splitlines()[0]} (details at the end)")
    finally:
        tool.cleanup()
        if not keep:
            for p in (ctx.tree, tool.dir / "restore", tool.repo):
                shutil.rmtree(p, ignore_errors=True)
    return res, day1_manifest


# --------------------------------------------------------------------------
# report


def fmt_s(x: float) -> str:
    return f"{x:.2f} s" if x < 100 else f"{x:.0f} s"


def fmt_mb(b: int) -> str:
    return f"{b / 1e6:.0f} MB"


LINE_ROWS = {"line_first": ("first", "up"), "line_day1": ("day1", "up"), "line_restore": ("restore", "down")}


def table(results: list[Result], wan: "Wan | None" = None) -> tuple[str, list[dict]]:
    names = [r.name for r in results]
    peers = [r for r in results if r.name in PEERS]
    coffre = next((r for r in results if r.name == "coffre"), None)
    with_ratio = coffre is not None and bool(peers)

    def value(r: Result, key: str) -> tuple[float | None, str]:
        if key in PHASES:
            m = r.phases.get(key)
            if not m:
                return None, "failed" if r.error else ""
            if key == "restore" and r.verified is False:
                return m.wall_s, fmt_s(m.wall_s) + " (WRONG TREE)"
            return m.wall_s, fmt_s(m.wall_s)
        if key in ("peak_backup", "peak_restore"):
            ph = BACKUP_PHASES if key == "peak_backup" else ("restore",)
            ms = [r.phases[p] for p in ph if p in r.phases]
            if not ms or (r.error and len(ms) < len(ph)):
                return None, "failed" if r.error else ""
            m = max(ms, key=lambda m: m.total_peak_rss_bytes)
            if m.server_peak_rss_bytes is not None:
                return (m.total_peak_rss_bytes,
                        f"{fmt_mb(m.total_peak_rss_bytes)} (client {m.peak_rss_bytes / 1e6:.0f} "
                        f"+ server {m.server_peak_rss_bytes / 1e6:.0f})")
            return m.peak_rss_bytes, fmt_mb(m.peak_rss_bytes)
        if key.startswith("cpu_"):
            m = r.phases.get(key[4:])
            return (m.cpu_s, fmt_s(m.cpu_s)) if m else (None, "")
        if key == "repo":
            return (r.repo_bytes, fmt_mb(r.repo_bytes)) if r.repo_bytes is not None else (None, "")
        if key in LINE_ROWS:
            phase, way = LINE_ROWS[key]
            m = r.phases.get(phase)
            if not m or m.line_up_bytes is None or wan is None:
                return None, ""
            sent = m.line_up_bytes if way == "up" else m.line_down_bytes
            rate = wan.up_bps if way == "up" else wan.down_bps
            if not rate:
                return None, f"{sent * 8 / m.wall_s / 1e6:.1f} Mbit/s"
            share = sent * 8 / (m.wall_s * rate)
            return share, f"{100 * share:.1f}% ({sent / 1e6:.0f} MB {way})"
        raise KeyError(key)

    rows = [
        ("first backup", "first"),
        ("unchanged rerun", "unchanged"),
        ("day-1 backup", "day1"),
        ("full restore", "restore"),
        ("peak memory, backup", "peak_backup"),
        ("peak memory, restore", "peak_restore"),
        ("repository size after day 1", "repo"),
        ("CPU time (user+sys), first backup", "cpu_first"),
        ("CPU time (user+sys), unchanged rerun", "cpu_unchanged"),
        ("CPU time (user+sys), day-1 backup", "cpu_day1"),
        ("CPU time (user+sys), full restore", "cpu_restore"),
    ]
    if wan is not None:
        rows[4:4] = [
            ("line used, first backup (of the up rate)", "line_first"),
            ("line used, day-1 backup (of the up rate)", "line_day1"),
            ("line used, full restore (of the down rate)", "line_restore"),
        ]
    head = ["", *names] + (["coffre ÷ best peer"] if with_ratio else ["best"])
    lines = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 1)]
    out_rows = []
    for title, key in rows:
        vals = {r.name: value(r, key) for r in results}
        cells = [vals[n][1] for n in names]
        peer_vals = [(vals[p.name][0], p.name) for p in peers if vals[p.name][0] is not None]
        # smaller is better, but for the share of the line used
        pick = max if key in LINE_ROWS else min
        best = pick(peer_vals) if peer_vals else None
        row = {"row": title, "key": key,
               "values": {n: (round(v, 3) if isinstance(v, float) else v) for n, (v, _) in vals.items()}}
        if with_ratio:
            cv = vals["coffre"][0]
            if cv is not None and best and best[0] > 0:
                ratio = cv / best[0]
                cells.append(f"**{ratio:.2f}×** (vs {best[1]})")
                row["ratio_to_best_peer"] = round(ratio, 3)
                row["best_peer"] = best[1]
            else:
                cells.append("")
        else:
            allv = [(v[0], n) for n, v in vals.items() if v[0] is not None]
            cells.append(pick(allv)[1] if allv else "")
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
        out_rows.append(row)
    return "\n".join(lines), out_rows


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# --------------------------------------------------------------------------
# binaries


def find_binaries(tools: list[str], args) -> dict[str, str]:
    bins: dict[str, str] = {}
    if args.wan:
        if os.geteuid() != 0:
            raise SystemExit("--wan makes network namespaces and TUN devices: run it as root")
        for exe, pkg in (("rclone", "rclone"), ("ip", "iproute2")):
            path = shutil.which(exe)
            if not path:
                raise SystemExit(f"--wan needs {exe}: apt-get install {pkg} (install-peers.sh does)")
            bins[exe] = path
        if not args.coffre_bin_dir and "coffre" not in tools:
            raise SystemExit("--wan needs coffre-wan: keep coffre in --tools or give --coffre-bin-dir")
    for t in tools:
        if t == "coffre":
            continue
        exe = "borg" if t == "borg" else t
        path = shutil.which(exe) or (str(Path.home() / ".cargo/bin" / exe)
                                     if (Path.home() / ".cargo/bin" / exe).exists() else None)
        if not path:
            raise SystemExit(f"{exe} not found on PATH: run benches/compare/install-peers.sh first, "
                             f"or leave it out with --tools")
        bins[t] = path
    if "coffre" in tools or args.wan:
        if args.coffre_bin_dir:
            bin_dir = Path(args.coffre_bin_dir)
        else:
            log("building coffre: cargo build --release --bin coffre --bin coffre-server --bin coffre-wan")
            res = subprocess.run(["cargo", "build", "--release", "--bin", "coffre", "--bin", "coffre-server",
                                  "--bin", "coffre-wan"], cwd=REPO_ROOT)
            if res.returncode != 0:
                raise SystemExit("cargo build of coffre failed (see above); or give --coffre-bin-dir")
            meta = json.loads(subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"],
                                             cwd=REPO_ROOT, capture_output=True, check=True).stdout)
            bin_dir = Path(meta["target_directory"]) / "release"
            bins["coffre-built-here"] = "yes"
        for exe in (("coffre", "coffre-server") if "coffre" in tools else ()) + (("coffre-wan",) if args.wan else ()):
            p = bin_dir / exe
            if not (p.is_file() and os.access(p, os.X_OK)):
                raise SystemExit(f"{p} is not an executable")
            bins[exe] = str(p.resolve())
    return bins


# --------------------------------------------------------------------------


def safe_name(line: str) -> str:
    """A directory name for a line's runs."""
    return "line-" + "".join(c if c.isalnum() or c in "-._" else "_" for c in line)


def main() -> int:
    ap = argparse.ArgumentParser(
        description="Compare coffre with restic, rustic and borg on the same synthetic data "
                    "(first backup, unchanged rerun, day-1 backup, full restore).")
    ap.add_argument("--tools", default=",".join(ALL_TOOLS),
                    help="comma-separated, run in this order [default: %(default)s]")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="make-dataset scale: 1 is about 1.5 GB, 0.05 about 75 MB [default: %(default)s]")
    ap.add_argument("--make-dataset", default=str(DEFAULT_MAKE_DATASET), metavar="PATH",
                    help="the dataset generator [default: <repo>/../shared/bench/make-dataset]")
    ap.add_argument("--work", metavar="DIR",
                    help="work directory (must be empty or absent) [default: a new one under /tmp]")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (repositories, trees, logs)")
    ap.add_argument("--json-out", metavar="FILE", help="also write the results as JSON here")
    ap.add_argument("--coffre-bin-dir", metavar="DIR",
                    help="take coffre and coffre-server from DIR instead of building them with cargo")
    ap.add_argument("--wan", metavar="LINE[,LINE...]",
                    help="run over each of these emulated lines (`coffre-wan --help` names them: vdsl-0.1, "
                         "vdsl-1, adsl, 4g...; a line with spaces alone: --wan 'vdsl loss=2%%'), coffre and "
                         "restic over REST only; Linux, as root")
    ap.add_argument("--tcp", default="cubic", metavar="NAME",
                    help="TCP congestion control of both hosts with --wan (`sysctl "
                         "net.ipv4.tcp_available_congestion_control` lists them) [default: %(default)s, "
                         "as on Windows and most Linux]")
    args = ap.parse_args()

    if args.wan is not None and "," in args.wan and " " not in args.wan:
        lines = [w.strip() for w in args.wan.split(",") if w.strip()]
    elif args.wan is not None:
        lines = [args.wan.strip()]
    else:
        lines = [None]
    if args.wan is not None and "--tools" not in sys.argv:
        args.tools = "coffre,restic"
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    if args.wan is not None and any(t not in ("coffre", "restic") for t in tools):
        ap.error("--wan compares coffre and restic over REST: --tools coffre,restic (or one of them)")
    unknown = [t for t in tools if t not in ALL_TOOLS]
    if unknown or not tools:
        ap.error(f"--tools: unknown {unknown}; choose among {','.join(ALL_TOOLS)}")
    make_dataset = Path(args.make_dataset)
    if not make_dataset.is_file():
        raise SystemExit(
            f"make-dataset not found at {make_dataset}: it lives in the project's shared directory "
            "(../shared/bench/make-dataset beside the repository), which a plain clone does not have; "
            "give its path with --make-dataset PATH")
    if args.scale <= 0:
        ap.error("--scale must be positive")

    bins = find_binaries(tools, args)

    if args.work:
        work = Path(args.work).resolve()
        if work.exists() and any(work.iterdir()):
            raise SystemExit(f"--work {work} is not empty")
        work.mkdir(parents=True, exist_ok=True)
    else:
        work = Path(tempfile.mkdtemp(prefix="coffre-compare-", dir="/tmp"))
    log(f"work directory {work}" + (" (kept)" if args.keep else " (removed at the end; --keep keeps it)"))

    home = work / "home"
    (home / ".cache").mkdir(parents=True)
    (home / ".config").mkdir(parents=True)
    base_env = dict(os.environ)
    base_env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"),
                    XDG_CONFIG_HOME=str(home / ".config"), XDG_DATA_HOME=str(home / ".local/share"))
    for var in [v for v in base_env if v.startswith(("RESTIC_", "RUSTIC_", "BORG_", "COFFRE_"))]:
        del base_env[var]
    ctx = Ctx(work=work, tree=work / "data" / "asso-pc", home=home, base_env=base_env)
    ctx.tree.parent.mkdir()

    started = datetime.datetime.now(datetime.timezone.utc)
    load_start = os.getloadavg()
    runs: list[tuple[str | None, Wan | None, list[Result]]] = []
    try:
        pristine = work / "day0"
        log(f"make-dataset {pristine} --scale {args.scale}")
        t0 = time.perf_counter()
        run([sys.executable, str(make_dataset), str(pristine), "--scale", str(args.scale)])
        log(f"dataset written in {time.perf_counter() - t0:.0f} s; measuring it")
        day0_manifest = manifest(pristine)
        day0 = tree_stats(day0_manifest)
        log(f"day 0: {day0['bytes'] / 1e6:.0f} MB in {day0['files']} files")
        reference = None
        for line in lines:
            if line is not None:
                log(f"the line: coffre-wan netns --profile {line!r}")
                ctx.wan = Wan(bins["coffre-wan"], line, work / "wan-log.txt", args.tcp)
            try:
                results: list[Result] = []
                for name in tools:
                    if line is not None:
                        ctx.work = work / safe_name(line)
                    tool = TOOL_CLASSES[name](ctx, bins)
                    res, day1_manifest = run_tool(tool, ctx, pristine, make_dataset, args.scale, day0_manifest,
                                                  reference, args.keep)
                    if reference is None and day1_manifest is not None:
                        reference = day1_manifest
                    results.append(res)
                runs.append((line, ctx.wan, results))
            finally:
                if ctx.wan:
                    ctx.wan.stop()
                    ctx.wan = None
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    day1 = tree_stats(reference) if reference else None
    nproc = len(os.sched_getaffinity(0))
    load_end = os.getloadavg()
    all_results = [r for _, _, results in runs for r in results]
    title = ("coffre vs restic over REST, over an emulated line" if args.wan is not None
             else "coffre vs restic, rustic, borg")
    out = [
        f"## {title} — {started.strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        f"Machine: {nproc} cores available (`nproc`) of {cpu_model()}, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB; "
        f"load average {load_start[0]:.2f} at start, {load_end[0]:.2f} at end.",
        f"Dataset: {make_dataset.name} --scale {args.scale:g}: day 0 {day0['bytes'] / 1e6:.0f} MB in "
        f"{day0['files']} files ({day0['dirs']} directories, {day0['symlinks']} symlinks)"
        + (f"; day 1 {day1['bytes'] / 1e6:.0f} MB in {day1['files']} files." if day1 else "."),
        "Order: each tool runs its whole sequence (init, first backup, unchanged rerun, day-1 backup, "
        "restore) before the next tool; no interleaving per phase. Page cache not dropped (each tool "
        "gets a fresh, warm copy of the tree); `sync` before every phase, untimed.",
        "Times are wall-clock seconds; memory is peak RSS in MB (10^6 bytes) of the process "
        "(coffre: client + server, each its own peak during the phase); "
        "CPU is user+sys of the process (coffre: client + server).",
    ]
    if args.wan is not None:
        out.append("Over the line: `coffre-wan netns` joins a client and a server network namespace; the "
                   "share of the line is the IP bytes that crossed it during the phase (headers and "
                   "retransmissions included) over the line's rate times the wall time. "
                   f"TCP congestion control of both hosts: {args.tcp}.")
    out += ["", "Versions:"]
    seen = set()
    for r in all_results:
        if r.name not in seen:
            seen.add(r.name)
            out.append(f"- {r.name}: {r.version or 'unknown'}" + (f" — {r.notes}" if r.notes else ""))
    tables = []
    for line, wan, results in runs:
        tbl, rows = table(results, wan)
        tables.append({"line": line, "rows": rows})
        out.append("")
        if line is not None:
            out += [f"### Line `{line}`", ""]
        out += [tbl, ""]
        for r in results:
            if r.verified:
                out.append(f"- {r.name}: restore verified byte-identical to the day-1 tree"
                           + (f" ({len(r.restore_warnings)} mode differences)" if r.restore_warnings else ""))
            elif r.error:
                first = r.error.splitlines()[0]
                out.append(f"- {r.name}: FAILED: {first}")
    report = "\n".join(out)
    print(report)

    if args.json_out:
        doc = {
            "date": started.isoformat(timespec="seconds"),
            "nproc": nproc,
            "cpu": cpu_model(),
            "loadavg_start": [round(x, 2) for x in load_start],
            "loadavg_end": [round(x, 2) for x in load_end],
            "scale": args.scale,
            "order": "sequential: each tool's whole sequence, then the next tool",
            "dataset": {"day0": day0, "day1": day1},
            "runs": [
                {
                    "line": line,
                    "line_up_bps": wan.up_bps if wan else None,
                    "line_down_bps": wan.down_bps if wan else None,
                    "tools": {
                        r.name: {
                            "version": r.version,
                            "notes": r.notes,
                            "phases": {p: m.to_json() for p, m in r.phases.items()},
                            "repo_bytes": r.repo_bytes,
                            "restore_verified": r.verified,
                            "restore_mode_warnings": r.restore_warnings,
                            "error": r.error,
                        }
                        for r in results
                    },
                }
                for line, wan, results in runs
            ],
            "tables": tables,
            "markdown": report,
        }
        Path(args.json_out).write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        log(f"JSON written to {args.json_out}")

    failed = [r for r in all_results if r.error]
    if failed:
        for r in failed:
            print(f"\n{r.name} FAILED:\n{r.error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
