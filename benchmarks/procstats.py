"""What a process tree and the machine spent, read from /proc: peak RSS (VmHWM) and CPU
time of a server and each of its descendants, and who used the CPU during a measurement."""

from __future__ import annotations

import os
import resource
import threading
import time
from typing import Any

from benchmarks.common import rounded

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name (which may hold spaces): [state, ppid, ...]."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_time(pid: int) -> str | None:
    """Tells a process apart from a later one with the same pid."""
    fields = _stat_fields(pid)
    return fields[19] if fields else None


def is_running(pid: int, started: str) -> bool:
    """The process we saw is still there and not a zombie waiting to be reaped."""
    fields = _stat_fields(pid)
    return bool(fields) and fields[19] == started and fields[0] != "Z"


def _cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of one process (its own, not its reaped children's)."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / _TICK if fields else None


def machine_busy_s() -> tuple[float, float]:
    """(CPU-seconds the whole machine was busy, including time stolen by the hypervisor; of which stolen)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (values + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / _TICK, steal / _TICK


def _proc_status(pid: int) -> dict[str, int]:
    """VmHWM / VmRSS of a process in kB (empty when it is gone)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmHWM:", "VmRSS:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return out


def _descendants(root: int) -> list[int]:
    """Every live descendant of `root`, from the ppid field of /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces: ppid follows the last ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class RssMonitor:
    """Samples the peak RSS (VmHWM) and the CPU time of a process and of each of its
    descendants (so that processes which exit before the end are counted too)."""

    def __init__(self, pid: int, every_s: float = 0.5) -> None:
        self.pid, self.every_s = pid, every_s
        self.server_kb = 0
        self.children_kb: dict[int, int] = {}
        self.child_start: dict[int, str | None] = {}  # pid -> start time, so a reused pid is never mistaken
        self.peak_tree_rss_kb = 0  # the largest simultaneous sum of current RSS seen
        self.cpu: dict[int, float] = {}  # pid -> CPU seconds when last seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-monitor", daemon=True)

    def start(self) -> "RssMonitor":
        self._thread.start()
        return self

    def sample(self) -> None:
        status = _proc_status(self.pid)
        if not status:
            return
        self.server_kb = max(self.server_kb, status.get("VmHWM", 0))
        tree_rss = status.get("VmRSS", 0)
        for pid in [self.pid, *_descendants(self.pid)]:
            cpu = _cpu_s(pid)
            if cpu is not None:
                self.cpu[pid] = max(self.cpu.get(pid, 0.0), cpu)
            if pid == self.pid:
                continue
            s = _proc_status(pid)
            if s:
                self.children_kb[pid] = max(self.children_kb.get(pid, 0), s.get("VmHWM", 0))
                self.child_start.setdefault(pid, start_time(pid))
                tree_rss += s.get("VmRSS", 0)
        self.peak_tree_rss_kb = max(self.peak_tree_rss_kb, tree_rss)

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.sample()

    def stop(self) -> None:
        self.sample()
        self._stop.set()
        self._thread.join(timeout=5)

    def report(self) -> dict[str, Any]:
        mb = lambda kb: round(kb / 1024, 1)  # noqa: E731
        children = sum(self.children_kb.values())
        return {"server_mb": mb(self.server_kb), "children_mb": mb(children), "children": len(self.children_kb),
                "total_mb": mb(self.server_kb + children), "peak_concurrent_rss_mb": mb(self.peak_tree_rss_kb)}


class CpuAccount:
    """Who used the CPU during a level: this process, the server tree, and everything else.

    Everything else (other programs, and time the hypervisor gave to other guests)
    competed with the measurement; the report flags a run where it was not small.
    """

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.busy0, self.steal0 = machine_busy_s()
        self.self0 = _self_cpu_s()

    def report(self, server_cpu_s: float) -> dict[str, Any]:
        wall = max(time.monotonic() - self.t0, 1e-9)
        busy, steal = machine_busy_s()
        busy, steal = busy - self.busy0, steal - self.steal0
        ours = _self_cpu_s() - self.self0
        other = max(0.0, busy - ours - server_cpu_s)
        return {"wall_s": round(wall, 1), "machine_busy_cores": rounded(busy / wall),
                "benchmark_cores": rounded(ours / wall), "server_cores": rounded(server_cpu_s / wall),
                "other_cores": rounded(other / wall), "steal_cores": rounded(steal / wall)}


def _self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
