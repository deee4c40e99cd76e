"""Helpers shared by the benchmark scripts in ``scripts/bench``.

Nothing here imports torch, numpy or gymnasium: the orchestrating process of ``compare.py``
stays small so that the peak RSS its spawned workers inherit from it stays negligible.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DOC_PATH = REPO_ROOT / "docs" / "benchmarks.md"

DOC_HEADER = """# Benchmarks

Measured side by side on the same machine, in the same run, with the scripts in
`scripts/bench/`. Each section below is rewritten by the script named in it; everything
outside the marker comments is left alone.

* `compare.py` — velora's liquid agents against their Stable-Baselines3 peers: env steps per
  second, evaluation return, peak RSS, parameter counts, acting latency, and velora/SB3 ratios.
* `scaling.py` — how the update cost, acting latency and memory of `LiquidSAC` grow with the
  circuit size, the batch size and the sequence length.

On a shared, noisy machine only the ratios measured within one run mean much; the absolute
figures move with the load.
"""


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_note() -> dict[str, object]:
    """What the host looked like when a run started (cores, CPU model, load)."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {"cpu_count": os.cpu_count(), "cpu_model": cpu_model(), "platform": platform.platform(),
            "python": platform.python_version(), "loadavg_1m": round(load[0], 2)}


def command_line() -> str:
    script = Path(sys.argv[0])
    with contextlib.suppress(ValueError):
        script = script.resolve().relative_to(REPO_ROOT)
    return shlex.join(["python", str(script), *sys.argv[1:]])


def code_version(root: Path = REPO_ROOT) -> str | None:
    """The commit the code under ``root`` is at (12 hex digits), with ``+modified`` when
    ``velora/``, ``scripts/`` or ``configs/`` differ from it; ``None`` outside a git checkout.
    Results files record it on every line, so figures from two versions of the code (the
    same maths rounded differently, say) can be told apart."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                                 text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "--short=12", "HEAD")
    if not commit:
        return None
    changes = git("status", "--porcelain", "--untracked-files=no", "--", "velora", "scripts",
                  "configs")
    return commit + ("+modified" if changes else "")


def today() -> str:
    return time.strftime("%Y-%m-%d %H:%M %Z")


def peak_rss_mib() -> dict[str, float]:
    """This process's peak resident set size in MiB: ``getrusage`` (kept across ``exec``, so it
    includes what the parent held when it started us) and ``VmHWM`` (this image only)."""
    out = {"ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}
    hwm = read_status_kib("VmHWM")
    if hwm is not None:
        out["vmhwm_mib"] = hwm / 1024.0
    return out


def read_status_kib(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``), or None off Linux."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux >= 4.0); False where that is not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def median(values: Iterable[float]) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def spread(values: list[float], fmt: str = "{:.1f}") -> str:
    """``median`` or ``median [min, max]`` when there is more than one value."""
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    text = fmt.format(statistics.median(values))
    if len(values) > 1:
        text += f" [{fmt.format(min(values))}, {fmt.format(max(values))}]"
    return text


def replace_between_markers(path: Path, name: str, body: str) -> None:
    """Replace the text between ``<!-- name:start -->`` and ``<!-- name:end -->`` in ``path``
    with ``body``. ``ValueError`` (nothing written) unless the file holds exactly one such pair,
    in that order; the file is replaced whole (written beside it, then renamed), so a cut run
    never leaves it half-written."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text(encoding="utf-8")
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise ValueError(f"{path} must hold one {start} ... {end} pair")
    head, rest = text.split(start)
    tail = rest.split(end)[1]
    _write_whole(path, f"{head}{start}\n{body.strip()}\n{end}{tail}")


def _write_whole(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_section(name: str, body: str, path: Path = DOC_PATH) -> Path:
    """Replace the text between ``<!-- name:start -->`` and ``<!-- name:end -->`` in ``path``
    (appending the section, or creating the file, where it is missing)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text(encoding="utf-8") if path.exists() else DOC_HEADER
    if start in text and end in text and text.index(start) < text.index(end):
        replace_between_markers(path, name, body)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_whole(path, text.rstrip("\n") + f"\n\n{start}\n{body.strip()}\n{end}\n")
    return path
