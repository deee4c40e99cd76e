"""Networks: liquid NCP networks and their parts (see :mod:`velora.models.lnn`)."""

from velora.models.lnn import LiquidNCPNetwork, NCPLiquidCell, NCPNetwork, SparseLinear

__all__ = ["LiquidNCPNetwork", "NCPLiquidCell", "NCPNetwork", "SparseLinear"]
