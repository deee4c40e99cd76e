"""The one agent registry: the CLI, Tune and checkpoint loading all read it.

Every subclass of :class:`~velora.agents.OffPolicyAgent` is recorded by class name as it is
defined, so a checkpoint of any agent class (a user's subclass included) loads as that class.
The agents offered by name (``velora train sac ...``, a sweep's ``agent = "sac"``) are the
classes registered with :func:`register_algorithm` under their ``algorithm`` name.
"""

from __future__ import annotations

from typing import Any

AGENT_CLASSES: dict[str, type] = {}  # class name -> class: every agent class defined
ALGORITHMS: dict[str, type] = {}  # algorithm name -> class: the agents offered by name


def record_class(cls: type) -> None:
    """Record ``cls`` by its class name (``OffPolicyAgent.__init_subclass__`` calls this)."""
    AGENT_CLASSES[cls.__name__] = cls


def register_algorithm(cls: Any) -> Any:
    """Class decorator: offer ``cls`` by its ``algorithm`` name to the CLI and Tune.
    ``ValueError`` if another class already has that name."""
    name = cls.algorithm
    if ALGORITHMS.get(name, cls) is not cls:
        raise ValueError(f"algorithm {name!r} is already registered for "
                         f"{ALGORITHMS[name].__name__}; give {cls.__name__} another algorithm")
    ALGORITHMS[name] = cls
    return cls


def algorithms() -> dict[str, type]:
    """``{algorithm name: agent class}`` of every registered agent, e.g. ``{"sac": LiquidSAC}``
    (importing :mod:`velora.agents` registers the built-in ones)."""
    import velora.agents  # noqa: F401 - the built-in agents register on import

    return dict(ALGORITHMS)


def agent_class(name: str) -> type:
    """The agent class registered as ``name``; ``ValueError`` naming the choices."""
    classes = algorithms()
    if name not in classes:
        raise ValueError(f"unknown agent {name!r}; choose one of {sorted(classes)}")
    return classes[name]
