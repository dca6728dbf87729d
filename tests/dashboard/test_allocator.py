"""The server's allocator settings (ui.warm.tune_allocator): freed activations are reused, memory is given back."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT

# In a fresh process (mallopt is per process), in a thread as Streamlit runs a page: the deletion sweeps' pass (a
# resnet20's folded bfloat16 copy from its cached first block input, 250 images) three times; page faults counted.
CHILD = r"""
import json, resource, sys, threading
sys.path.insert(0, {root!r})
import torch
import ui.warm as w
if {mode!r} == "server":
    assert w.tune_allocator()
elif {mode!r} == "mmap only":  # the setting of the round before: a fixed mmap threshold, glibc's 128 KB trim threshold
    import ctypes, ctypes.util
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    assert libc.mallopt(w.M_MMAP_THRESHOLD, w.MMAP_THRESHOLD) == 1 and libc.mallopt(w.M_ARENA_MAX, 2) == 1
out = {{}}


def work():
    from analysis.analyses._prefix import inference_copy
    from analysis.core.common import autocast
    from analysis.core.models import build_model

    torch.manual_seed(0)
    m = inference_copy(build_model("resnet20").eval())
    x = torch.randn(250, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), autocast(torch.device("cpu"), True):
        inputs, _ = m.block_inputs(x)
        m.forward_from(0, inputs[0])  # the arena grown to what one pass needs
        f = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(3):
            m.forward_from(0, inputs[0])
    out["faults"] = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f
    w.release_memory()


th = threading.Thread(target=work)
th.start()
th.join()
print(json.dumps(out))
"""


def faults(mode: str) -> int:
    res = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT), mode=mode)], capture_output=True,
                         text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])["faults"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_freed_activations_are_reused_not_faulted_in_again():
    act = 250 * 16 * 32 * 32 * 2 // 4096  # pages of one first-stage activation (bfloat16): 2,000 of 4 KB
    server, mmap_only = faults("server"), faults("mmap only")
    # A fixed mmap threshold alone also fixes glibc's trim threshold at 128 KB: each freed activation at the arena's
    # top went back to the system and the next one was faulted in and zeroed again (29,713-30,117 faults here, 1.4x slower
    # Block deletion page: benchmarks/allocator.py --pages).
    assert mmap_only > 3 * 3 * act, mmap_only
    # The server keeps up to TRIM_THRESHOLD at the top while a computation runs (1-3,001 faults here).
    assert server < 3 * act, server
