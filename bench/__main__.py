"""`make bench`: benchmarks with their own runner; results go in docs/benchmarks.md."""

from __future__ import annotations

import subprocess
import sys
import time


def bench_test_suite() -> None:
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], check=False
    )
    print(f"make test equivalent: exit {result.returncode}, {time.monotonic() - start:.1f} s wall")


if __name__ == "__main__":
    bench_test_suite()
