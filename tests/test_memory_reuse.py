"""Training and sampling processes keep the memory they free for the next step (glibc)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# Allocate and free 64 MB; print how much the resident size fell.
SCRIPT = """
import os, sys
import numpy as np
from boltzkinema.util import keep_freed_memory

def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

if sys.argv[1] == "keep":
    assert keep_freed_memory()
block = np.ones(64 * 2**20 // 8)
before = rss()
del block
print((before - rss()) / 2**20)
"""


def _released_mb(mode: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip())


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_freed_activations_stay_in_the_process_instead_of_going_back_to_the_os():
    assert _released_mb("default") > 48  # glibc unmaps a large block on free
    assert _released_mb("keep") < 8  # kept for the next step's allocations


def test_an_allocator_the_user_configured_is_left_alone():
    from boltzkinema.util import keep_freed_memory

    assert not keep_freed_memory({"MALLOC_TRIM_THRESHOLD_": "131072"})
    assert not keep_freed_memory({"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=1048576"})
    assert not keep_freed_memory({"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"})
