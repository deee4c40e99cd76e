"""How many intra-op threads torch uses while an agent trains, acts or is evaluated.

velora's circuits are tiny: one update multiplies matrices of a few hundred rows by a few dozen
neurons, too little work to split across a thread pool. Torch's default (one intra-op thread
per core) buys nothing on an idle machine and costs a great deal on a busy one: its OpenMP
threads wait on each other, and a core taken by another process stalls every step. Measured on
a shared 2-core machine under load (``scripts/bench/threads.py``, ``docs/benchmarks.md``): one
``LiquidSAC`` update with 64 neurons and batch 256 took 24 ms on one thread and 1,530 ms on
two; with 512 neurons and batch 1024, 1,007 ms against 1,837 ms; and training made 3-25× more
env steps per second on one thread than on two, alone, two runs at once and beside a busy
process.

So an agent runs ``learn``, ``predict`` and ``evaluate`` inside :func:`intra_op_threads`, with
the count :func:`default_threads` chooses unless the user gave ``threads=``: one thread on the
CPU for circuits of at most :data:`SMALL_CIRCUIT_NEURONS` neurons (the sizes measured), and
otherwise torch's own setting, untouched. The caller's setting is restored afterwards, also when
the block raises; nothing changes at import.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import torch

#: The largest circuit (neurons of the actor or of one critic) that trains with one intra-op
#: thread by default. Every size measured up to here (batch 1024 included) was fastest with
#: one thread on the 2-core benchmark machine; larger circuits keep torch's own setting.
SMALL_CIRCUIT_NEURONS = 512

_T = TypeVar("_T")


def check_threads(threads: int | None) -> int | None:
    """``threads`` itself if it is ``None`` or a positive int, else a ValueError naming it."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer or None (velora's rule), "
                         f"got {threads!r}")
    return threads


def default_threads(neurons: int, device: str | torch.device = "cpu") -> int | None:
    """velora's rule: ``1`` for a CPU agent whose largest circuit has at most
    :data:`SMALL_CIRCUIT_NEURONS` neurons, else ``None`` (leave torch's setting alone — on a
    GPU the host threads only launch kernels)."""
    kind = device.type if isinstance(device, torch.device) else torch.device(device).type
    if kind != "cpu":
        return None
    return 1 if neurons <= SMALL_CIRCUIT_NEURONS else None


def resolve_threads(threads: int | None, neurons: int,
                    device: str | torch.device = "cpu") -> int | None:
    """The intra-op thread count to run with: the user's ``threads`` when given, else
    :func:`default_threads`; ``None`` means torch's current setting."""
    threads = check_threads(threads)
    return threads if threads is not None else default_threads(neurons, device)


@contextmanager
def intra_op_threads(threads: int | None) -> Iterator[int]:
    """Run the block with ``torch.set_num_threads(threads)``, then restore the caller's count.

    ``None`` leaves torch's setting as it is. The previous count comes back on exit, also when
    the block raises, so blocks nest. Yields the count in effect inside the block.
    """
    threads = check_threads(threads)
    before = torch.get_num_threads()
    # Setting the count only when it differs keeps a per-action predict call cheap.
    changed = threads is not None and threads != before
    if changed:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        if changed:
            torch.set_num_threads(before)


def agent_threads(agent: Any) -> int | None:
    """The thread count ``agent`` runs with: its ``threads`` attribute (the constructor's
    ``threads=``) or velora's rule for its largest circuit and its device."""
    neurons = max(int(getattr(agent, name, 0) or 0) for name in ("n_neurons", "critic_neurons"))
    return resolve_threads(getattr(agent, "threads", None), neurons,
                           getattr(agent, "device", "cpu"))


def with_agent_threads(method: Callable[..., _T]) -> Callable[..., _T]:
    """Decorate an agent method so that it runs inside ``intra_op_threads(agent_threads(self))``."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> _T:
        threads = agent_threads(self)
        before = torch.get_num_threads()
        if threads is None or threads == before:  # the common case, without a generator:
            return method(self, *args, **kwargs)  # predict is called once per env step
        torch.set_num_threads(threads)
        try:
            return method(self, *args, **kwargs)
        finally:
            torch.set_num_threads(before)

    return wrapper
