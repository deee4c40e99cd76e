"""Argument checks shared by the package: each raises ``ValueError`` naming the argument,
the value it got and what it expected, before any state is touched."""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any


def positive_int(name: str, value: Any) -> int:
    """Return ``value`` as an ``int`` if it is a whole number >= 1."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def non_negative_int(name: str, value: Any) -> int:
    """Return ``value`` as an ``int`` if it is a whole number >= 0."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def finite_float(name: str, value: Any, *, low: float = -math.inf, high: float = math.inf,
                 low_open: bool = False, high_open: bool = False) -> float:
    """Return ``value`` as a ``float`` if it is finite and inside the given interval."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    value = float(value)
    below = value <= low if low_open else value < low
    above = value >= high if high_open else value > high
    if below or above:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        raise ValueError(f"{name} must be in {left}{low}, {high}{right}, got {value!r}")
    return value


class MissingDependencyError(ImportError):
    """An optional dependency is not installed; the message says what to install."""
