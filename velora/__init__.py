"""velora: Liquid reinforcement learning with Neural Circuit Policies."""

from velora.wiring import Wiring

__version__ = "0.3.0.dev0"

__all__ = ["Wiring", "__version__"]
