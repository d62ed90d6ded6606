"""glibc's allocator told to keep freed memory for reuse, not hand it back to the system.

The importance sampling of `classify`, `evaluate` and posterior inpainting works in chunks
of up to `scoring.CHUNK_ROWS` (particle, image) rows: a conv decoder's activations for one
chunk are tensors of hundreds of MB. glibc serves every block over its mmap threshold
(at most 32 MB) with a fresh `mmap` and unmaps it when freed, so each chunk pays for
faulting in every page again: on a 2-core CPU a third of `classify --mask top-half`'s
time went to the kernel (docs/benchmarks.md). With mmap off for the heap and trimming
off, freed blocks are reused; the process keeps its peak memory until it exits.

Every `pyro-cvae` command calls `keep_freed_memory` at start. It changes the whole
process, so the library never calls it: a research script opts in
(`pyro_cvae.keep_freed_memory()`). Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1  # glibc's <malloc.h> parameter numbers
M_MMAP_MAX = -4
TRIM_THRESHOLD = 2**31 - 1  # bytes of free heap top kept: the most mallopt takes (an int)


def keep_freed_memory() -> bool:
    """Turn off glibc's mmap for large blocks and its heap trimming in this process.

    Returns True when glibc accepted both settings, False on another C library (or a
    platform without one), where nothing changes.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
