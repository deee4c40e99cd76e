"""Off-policy agents with liquid NCP actors and critics."""

from velora.agents.base import OffPolicyAgent, Window, load_agent
from velora.agents.ddpg import LiquidDDPG
from velora.agents.sac import LiquidSAC
from velora.agents.sac_discrete import LiquidSACDiscrete

__all__ = ["LiquidDDPG", "LiquidSAC", "LiquidSACDiscrete", "OffPolicyAgent", "Window", "load_agent"]
