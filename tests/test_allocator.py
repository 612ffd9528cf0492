"""glibc's allocator kept from returning freed memory on CPU runs (`grasp_env.runs.allocator`)."""

import os
import platform
import subprocess
import sys

import pytest
import torch

from grasp_env.runs import allocator

GLIBC_CPU = (
    sys.platform.startswith("linux")
    and platform.libc_ver()[0] == "glibc"
    and not torch.cuda.is_available()
)
PROBE = "from grasp_env.runs.allocator import keep_freed_memory as k; print(k(), k())"


def _probe(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in allocator.USER_SETTINGS}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True,
        check=True, timeout=120,
    )  # fmt: skip
    return done.stdout.strip()


@pytest.mark.skipif(not GLIBC_CPU, reason="applies only under glibc without CUDA")
def test_applied_once_in_a_fresh_process_on_a_glibc_cpu_machine():
    assert _probe() == "True True"


@pytest.mark.skipif(not GLIBC_CPU, reason="applies only under glibc without CUDA")
@pytest.mark.parametrize("name", ["MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"])
def test_the_users_own_malloc_settings_stand(name):
    value = "glibc.malloc.trim_threshold=131072" if name == "GLIBC_TUNABLES" else "131072"
    assert _probe(**{name: value}) == "False False"


def test_never_on_a_machine_with_cuda(monkeypatch):
    # freed host copies of a large backbone would stay in the heap of a GPU run
    monkeypatch.setattr(allocator, "_applied", False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for name in allocator.USER_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    assert allocator.keep_freed_memory() is False
