"""Off-policy agents with liquid NCP actors and critics, their configs and their registry."""

from velora.agents.base import OffPolicyAgent, Window, load_agent
from velora.agents.config import DDPGConfig, OffPolicyConfig, SACConfig, SACDiscreteConfig
from velora.agents.ddpg import LiquidDDPG
from velora.agents.registry import agent_class, algorithms, register_algorithm
from velora.agents.sac import LiquidSAC
from velora.agents.sac_discrete import LiquidSACDiscrete
from velora.agents.td3 import LiquidTD3, TD3Config

__all__ = ["DDPGConfig", "LiquidDDPG", "LiquidSAC", "LiquidSACDiscrete", "LiquidTD3",
           "OffPolicyAgent", "OffPolicyConfig", "SACConfig", "SACDiscreteConfig", "TD3Config",
           "Window", "agent_class", "algorithms", "load_agent", "register_algorithm"]
