"""Replay storage for recurrent off-policy agents, and the windows their updates read."""

from velora.buffers.replay import ReplayBuffer, SequenceBatch, Transitions
from velora.buffers.window import Window, merge_time, sample_window, states_before_each_step

__all__ = ["ReplayBuffer", "SequenceBatch", "Transitions", "Window", "merge_time",
           "sample_window", "states_before_each_step"]
