"""Replay storage for recurrent off-policy agents."""

from velora.buffers.replay import ReplayBuffer, SequenceBatch, Transitions

__all__ = ["ReplayBuffer", "SequenceBatch", "Transitions"]
