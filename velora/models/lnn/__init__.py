"""Liquid Neural Circuit Policy building blocks: sparse layers, CfC cells and networks."""

from velora.models.lnn.cell import NCPLiquidCell
from velora.models.lnn.ensemble import LiquidNCPEnsemble
from velora.models.lnn.ncp import LiquidNCPNetwork, NCPNetwork
from velora.models.lnn.sparse import SparseLinear

__all__ = ["LiquidNCPEnsemble", "LiquidNCPNetwork", "NCPLiquidCell", "NCPNetwork", "SparseLinear"]
