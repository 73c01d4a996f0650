"""What the benchmarks share: rounds alternating between sides, CPU pinning, min/median/max,
the machine noted, and ``--write-docs``.

The rules every benchmark here follows:

- both sides of a ratio get the same event loop, HTTP parser, CPU pinning and CPU budget;
- rounds alternate between the sides (``order``: forward, then reversed, ... so that a drift of
  the machine's load hits every side alike; or shuffled with a seed);
- every figure is printed as min / median / max over the rounds, ratios as min / median / max
  of the per-round ratios (side / baseline measured in the same round);
- ``--write-docs`` replaces the benchmark's own section of docs/benchmarks.md with exactly what
  the run printed, the command line included; nothing else in that file changes.

Targets live in the benchmarks (printed as "met" / "NOT met"), never in timed tests.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"

#: The CPU layout every benchmark uses, the same for every side: the server (or the process
#: measured) on SERVER_CPU, the load generator on LOAD_CPU.
SERVER_CPU = 0
LOAD_CPU = 1

INSTALL_HINT = "pip install -e '.[bench]'"


# -- output -----------------------------------------------------------------------------------


class Output:
    """Prints lines and keeps them, so that ``--write-docs`` records exactly what was printed."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.extend(line.split("\n"))


def command_line() -> str:
    """The command as run from the repository root: ``python benchmarks/NAME.py ARGS``."""
    script = Path(sys.argv[0]).resolve()
    try:
        shown = script.relative_to(ROOT).as_posix()
    except ValueError:
        shown = str(script)
    return shlex.join(["python", shown, *sys.argv[1:]])


def write_docs(title: str, intro: str, out: Output) -> None:
    """Replace the ``## title`` section of docs/benchmarks.md (up to the next ``## ``) with a
    fixed ``intro`` and the printed lines; append the section when it is not there."""
    body = "\n".join(out.lines).strip("\n")
    section = (
        f"## {title}\n\n{intro.strip()}\n\n"
        f"Printed by `{command_line()}` (the block is that run's output, unedited):\n\n"
        f"```text\n$ {command_line()}\n{body}\n```\n"
    )
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip() + "\n\n" + section
    DOCS.parent.mkdir(exist_ok=True)
    DOCS.write_text(text.rstrip() + "\n")
    print(f"(wrote the '{title}' section of {DOCS.relative_to(ROOT)})")


# -- the machine --------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine(packages: Iterable[str] = ()) -> str:
    """One paragraph about where and with what the figures were taken."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    versions = ", ".join(f"{p} {v}" for p in ["bollydog", *packages] if (v := version(p)))
    return (
        f"machine: {cpu_model()}, {os.cpu_count()} CPUs, load average {load} at start; "
        f"{platform.python_implementation()} {platform.python_version()} on {platform.system()} "
        f"{platform.release()}; {versions}; {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}"
    )


# -- CPU pinning --------------------------------------------------------------------------------


#: The CPUs this process could use when it started (before any pin_self).
_CPUS = set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else set()


def can_pin() -> bool:
    return {SERVER_CPU, LOAD_CPU} <= _CPUS


def have_taskset() -> bool:
    return shutil.which("taskset") is not None and can_pin()


def pinned(cpu: int | None, argv: Sequence[str]) -> list[str]:
    """``argv`` run on ``cpu`` alone (``taskset -c``); unchanged when ``cpu`` is None or the
    machine cannot pin (one CPU, no taskset)."""
    if cpu is None or not have_taskset():
        return list(argv)
    return ["taskset", "-c", str(cpu), *argv]


def pin_self(cpu: int | None) -> None:
    """This process (and the threads it starts from now on) on ``cpu`` alone."""
    if cpu is not None and can_pin():
        os.sched_setaffinity(0, {cpu})


def affinity(pid: int = 0) -> str:
    try:
        cpus = sorted(os.sched_getaffinity(pid))
    except (AttributeError, OSError):
        return "?"
    return ",".join(map(str, cpus))


def check_pinned(pid: int, cpu: int | None, what: str) -> None:
    """Fail loudly when a process is not where the layout says (a skeptic's first question)."""
    if cpu is None or not have_taskset():
        return
    if affinity(pid) != str(cpu):
        raise RuntimeError(f"{what} (pid {pid}) runs on CPUs {affinity(pid)}, expected {cpu}")


def pinning_note(layout: dict[str, int | None]) -> str:
    if not have_taskset():
        return "CPU pinning: not available here (taskset missing or one CPU): processes float"
    return "CPU pinning (the same for every side): " + ", ".join(
        f"{what} on CPU {cpu}" for what, cpu in layout.items()
    )


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """CPU time of a process so far, its live threads summed: nanoseconds on CPU from
    ``/proc/PID/task/*/schedstat`` (``/proc/PID/stat``'s user + system ticks, 10 ms steps, where
    schedstat is missing)."""
    total, found = 0, False
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
                found = True
            except (OSError, ValueError, IndexError):
                pass
    except OSError:
        return float("nan")
    if found:
        return total / 1e9
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / _TICKS


def cpu_busy_seconds() -> dict[int, float]:
    """Busy time of each CPU so far (``/proc/stat``: user, nice, system, irq, softirq, steal)."""
    busy: dict[int, float] = {}
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            name, *fields = line.split()
            if name.startswith("cpu") and name != "cpu":
                user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
                busy[int(name[3:])] = (user + nice + system + irq + softirq + steal) / _TICKS
    except (OSError, ValueError):
        pass
    return busy


class CpuMeter:
    """Who used the CPUs during a measurement: each process we know of, and everyone else.

    ``processes`` maps a name to ``(pid, cpu it is pinned to)``; ``children_cpu``: the CPU of
    short-lived children waited for meanwhile (a load generator run with ``subprocess.run``),
    counted from ``getrusage(RUSAGE_CHILDREN)``. :meth:`stop` returns CPU seconds per name,
    ``"children"``, and ``"others@N"``: what other processes on the machine took of CPU N.
    """

    def __init__(self, processes: dict[str, tuple[int, int | None]], children_cpu: int | None = None) -> None:
        import resource

        self._resource = resource
        self.processes, self.children_cpu = processes, children_cpu
        self._start = self._sample()

    def _sample(self) -> dict[str, float]:
        sample = {name: cpu_seconds(pid) for name, (pid, _) in self.processes.items()}
        sample["self"] = cpu_seconds(os.getpid())
        usage = self._resource.getrusage(self._resource.RUSAGE_CHILDREN)
        sample["children"] = usage.ru_utime + usage.ru_stime
        for cpu, busy in cpu_busy_seconds().items():
            sample[f"busy@{cpu}"] = busy
        return sample

    def stop(self) -> dict[str, float]:
        end = self._sample()
        used = {k: end[k] - self._start.get(k, end[k]) for k in end}
        own_cpu = next(iter(os.sched_getaffinity(0))) if len(os.sched_getaffinity(0)) == 1 else None
        for key in [k for k in used if k.startswith("busy@")]:
            cpu = int(key[5:])
            ours = sum(used[name] for name, (_, c) in self.processes.items() if c == cpu)
            ours += used["children"] if self.children_cpu == cpu else 0
            ours += used["self"] if own_cpu == cpu else 0
            used[f"others@{cpu}"] = max(0.0, used[key] - ours)
        return used


# -- servers ----------------------------------------------------------------------------------


def explicit_uvicorn_stack(loop: str, http: str) -> list:
    """From now on, in this process, every ``uvicorn.Config`` gets ``loop=`` and ``http=``
    explicitly: for servers whose Config is built inside bollydog (``HttpService``,
    ``McpService``), which leave both to uvicorn's auto-detection. Returns the list of the
    Configs built, for the caller to check what was served. Benchmark-only."""
    import uvicorn

    # Imported before uvicorn.Config is replaced: bollydog's guard.Config must subclass uvicorn's
    # own Config, not the one below (which would put the plain protocol names back).
    from bollydog.entrypoint.kit import guard, site

    built: list = []
    base = uvicorn.Config

    class Config(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs) -> None:
            kwargs["loop"], kwargs["http"] = loop, http
            super().__init__(*args, **kwargs)
            built.append(self)

    uvicorn.Config = Config  # type: ignore[misc]

    # bollydog's sites build a Config of their own (with connection limits) and pass their
    # bounded protocol classes: the same stack, on bollydog's subclasses of uvicorn's protocols.
    bounded = guard._BoundedH11 if http == "h11" else guard.http_protocol()

    class GuardedConfig(guard.Config):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs) -> None:
            kwargs["loop"], kwargs["http"] = loop, bounded
            super().__init__(*args, **kwargs)
            built.append(self)

    site.Config = GuardedConfig  # type: ignore[misc]
    return built


# -- rounds and statistics ------------------------------------------------------------------


def rounds_order(sides: Sequence[str], rounds: int, seed: int | None = None) -> list[list[str]]:
    """The order of the sides in each round: forward, reversed, forward, ... (A B, B A, A B:
    a linear drift of the machine's load weighs on every side alike); with ``seed``, a fresh
    shuffle each round from that seed."""
    if seed is not None:
        rng = random.Random(seed)
        orders = []
        for _ in range(rounds):
            order = list(sides)
            rng.shuffle(order)
            orders.append(order)
        return orders
    return [list(sides) if i % 2 == 0 else list(reversed(sides)) for i in range(rounds)]


def order_note(seed: int | None) -> str:
    return f"order shuffled each round (seed {seed})" if seed is not None else "order forward/reversed alternately"


def spread(values: Sequence[float], spec: str = ",.0f") -> str:
    """``min X  median Y  max Z``."""
    if not values:
        return "-"
    return (f"min {format(min(values), spec)}  median {format(statistics.median(values), spec)}  "
            f"max {format(max(values), spec)}")


def triple(values: Sequence[float], spec: str = ",.0f", width: int = 8) -> str:
    """``min / median / max`` in fixed-width columns."""
    if not values:
        return " / ".join(["-".rjust(width)] * 3)
    return " / ".join(format(v, spec).rjust(width) for v in (min(values), statistics.median(values), max(values)))


def triple_header(label: str, width: int = 8) -> str:
    """A column title as wide as :func:`triple`'s output."""
    return label.rjust(3 * width + 6)


def per_round_ratios(side: Sequence[float], base: Sequence[float]) -> list[float]:
    return [a / b for a, b in zip(side, base) if b]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size from ``/proc/PID/status`` (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def stop(process: subprocess.Popen, timeout: float = 10) -> None:
    """Terminate a child we started, then kill it if it does not go."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
