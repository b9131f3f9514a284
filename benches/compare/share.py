#!/usr/bin/env python3
"""Sharing the office's line: a coffre backup beside a real TCP upload.

An association's PC backs up at night, but the line is the office's: someone
may be sending a large file at the same time. This runs, over one emulated
line (`coffre-wan netns`, Linux, as root), for SECONDS each:

  1. the TCP upload alone (the kernel's TCP, Cubic by default, like a
     Windows PC's);
  2. a coffre backup alone (incompressible data, more than the line can send
     in the time, so it sends all along);
  3. both together, started at once.

and prints each flow's rate, measured over the run minus its first 5 s (slow
start). The TCP flow's rate is what its receiver read; coffre's is the IP bytes
that crossed the line up (coffre-wan's counters) minus the TCP flow's, i.e. its
payload plus QUIC's headers and retransmissions. Fair sharing is about half
each; the question is whether coffre starves the other flow or is starved.

  sudo python3 benches/compare/share.py --lines vdsl,vdsl-0.1,vdsl-1 --seconds 40

Standard library only; the helpers are compare.py's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402
from compare import BenchError, Ctx, Wan, log  # noqa: E402

WARMUP_S = 5.0

# The other flow: a TCP receiver that writes its byte count every 100 ms, and a sender.
SINK = r"""
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1)
out = open(sys.argv[3], "a", buffering=1)
while True:
    c, _ = s.accept(); n = 0; c.settimeout(0.1)
    while True:
        try:
            b = c.recv(1 << 20)
            if not b:
                break
            n += len(b)
        except socket.timeout:
            pass
        out.write(f"{time.time():.3f} {n}\n")
    out.write(f"{time.time():.3f} {n} end\n"); c.close()
"""
SENDER = r"""
import socket, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2])))
buf = b"\0" * (1 << 16); end = time.time() + float(sys.argv[3])
while time.time() < end:
    c.sendall(buf)
c.close()
"""


def sink_bytes(path: Path, t0: float, t1: float) -> float:
    """Bytes the sink read between the wall times t0 and t1 (its last flow)."""
    rows = []
    for line in path.read_text().splitlines():
        ts, n, *_ = line.split()
        rows.append((float(ts), int(n)))
    def at(t: float) -> int:
        best = 0
        for ts, n in rows:
            if ts <= t:
                best = n
        return best
    return at(t1) - at(t0)


class Office:
    """The line, coffre's server and PC, and the TCP sink, all set up."""

    def __init__(self, bins: dict, line: str, work: Path, tcp: str, seconds: float, data_mb: int):
        self.work = work
        self.bins = bins
        home = work / "home"
        home.mkdir(parents=True)
        env = dict(os.environ, HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
                   XDG_CACHE_HOME=str(home / ".cache"), XDG_DATA_HOME=str(home / ".local/share"))
        self.wan = Wan(bins["coffre-wan"], line, work / "wan-log.txt", tcp)
        self.ctx = Ctx(work=work, tree=work / "tree", home=home, base_env=env, wan=self.wan)
        self.ctx.tree.mkdir()
        # enough for the up rate over the run, twice
        data_mb = data_mb or int(self.wan.up_bps * seconds / 8e6 * 2) + 8
        log(f"{data_mb} MB of incompressible data")
        for i in range((data_mb + 63) // 64):
            (self.ctx.tree / f"part-{i:03}.bin").write_bytes(os.urandom(min(64, data_mb - 64 * i) << 20))
        self.coffre = compare.Coffre(self.ctx, bins)
        self.coffre.prepare()
        self.coffre.init()
        self.sink_log = work / "sink.txt"
        self.sink = subprocess.Popen(self.wan.server_prefix() + [sys.executable, "-c", SINK, self.wan.server_ip,
                                                                 "9000", str(self.sink_log)],
                                     stdin=subprocess.DEVNULL)
        compare.wait_listening(self.sink, "the TCP sink", "tcp", 9000, self.sink_log)

    def tcp(self, seconds: float) -> subprocess.Popen:
        return subprocess.Popen(self.wan.client_prefix() + [sys.executable, "-c", SENDER, self.wan.server_ip,
                                                            "9000", str(seconds)],
                                stdin=subprocess.DEVNULL)

    def backup(self) -> subprocess.Popen:
        cmd = [self.bins["coffre"], "backup", "--config", str(self.coffre.cfg), "--quiet"]
        out = open(self.work / "backup-log.txt", "ab")
        return subprocess.Popen(self.ctx.client(cmd), env=self.coffre.env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=out)

    def forget_backups(self) -> None:
        """New random content, so that each run sends all of it (nothing is deduplicated)."""
        for f in self.ctx.tree.iterdir():
            f.write_bytes(os.urandom(f.stat().st_size))

    def measure(self, seconds: float, with_tcp: bool, with_coffre: bool) -> dict:
        procs = []
        if with_coffre:
            self.forget_backups()
            procs.append(self.backup())
        if with_tcp:
            procs.append(self.tcp(seconds + 1))
        time.sleep(WARMUP_S)
        c0, t0 = self.wan.counters(), time.time()
        time.sleep(seconds - WARMUP_S)
        c1, t1 = self.wan.counters(), time.time()
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        if with_coffre and procs[0].returncode == 0:
            raise BenchError("the backup finished within the run: give more --data-mb")
        up = (c1["up"]["bytes"] - c0["up"]["bytes"]) * 8 / (t1 - t0)
        tcp = sink_bytes(self.sink_log, t0, t1) * 8 / (t1 - t0) if with_tcp else 0.0
        # the TCP flow's IP bytes: its payload plus 52 bytes of IP and TCP headers per 1448
        tcp_wire = tcp * 1500 / 1448
        return {"line": up, "tcp": tcp, "coffre": max(0.0, up - tcp_wire) if with_coffre else 0.0}

    def close(self) -> None:
        compare.stop_process(self.sink, "the TCP sink")
        self.coffre.cleanup()
        self.wan.stop()


def mbit(x: float) -> str:
    return f"{x / 1e6:.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description="A coffre backup beside a TCP upload, over one emulated line.")
    ap.add_argument("--lines", default="vdsl,vdsl-0.1,vdsl-1", metavar="LINE[,LINE...]",
                    help="the lines (`coffre-wan --help`) [default: %(default)s]")
    ap.add_argument("--seconds", type=float, default=40.0, help="each run's length [default: %(default)s]")
    ap.add_argument("--data-mb", type=int, default=0,
                    help="coffre's data, MB [default: enough for the up rate over the run, twice]")
    ap.add_argument("--tcp", default="cubic", help="TCP congestion control of both hosts [default: %(default)s]")
    ap.add_argument("--coffre-bin-dir", metavar="DIR",
                    help="take coffre, coffre-server and coffre-wan from DIR instead of building them")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("share.py makes network namespaces and TUN devices: run it as root")
    args.wan = args.lines
    bins = compare.find_binaries(["coffre"], args)
    lines = [w.strip() for w in args.lines.split(",") if w.strip()]
    rows = []
    for line in lines:
        work = Path(tempfile.mkdtemp(prefix="coffre-share-", dir="/tmp"))
        office = None
        try:
            log(f"line {line}")
            office = Office(bins, line, work, args.tcp, args.seconds, args.data_mb)
            log("TCP alone")
            tcp_alone = office.measure(args.seconds, True, False)
            log("coffre alone")
            coffre_alone = office.measure(args.seconds, False, True)
            log("both")
            both = office.measure(args.seconds, True, True)
            rows.append((line, office.wan.up_bps, tcp_alone, coffre_alone, both))
        finally:
            if office:
                office.close()
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n## coffre beside a TCP upload ({args.tcp}), {args.seconds:g} s each, Mbit/s of the up line\n")
    print("| line | up rate | TCP alone | coffre alone | together: TCP | together: coffre | coffre's share |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for line, rate, t, c, b in rows:
        share = b["coffre"] / (b["coffre"] + b["tcp"]) if b["coffre"] + b["tcp"] else 0
        print(f"| {line} | {mbit(rate)} | {mbit(t['tcp'])} | {mbit(c['coffre'])} | {mbit(b['tcp'])} | "
              f"{mbit(b['coffre'])} | {100 * share:.0f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
