"""Facts about the machine a benchmark ran on, shared by the benchmark scripts."""

from pathlib import Path


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, or ``"unknown"``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"
