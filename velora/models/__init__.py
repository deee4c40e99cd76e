"""Networks: liquid NCP networks and their parts (see :mod:`velora.models.lnn`), and the LSTM /
GRU heads of the same interface (:mod:`velora.models.rnn`)."""

from velora.models.lnn import LiquidNCPNetwork, NCPLiquidCell, NCPNetwork, SparseLinear
from velora.models.rnn import RNNEnsemble, RNNNetwork

__all__ = ["LiquidNCPNetwork", "NCPLiquidCell", "NCPNetwork", "RNNEnsemble", "RNNNetwork",
           "SparseLinear"]
