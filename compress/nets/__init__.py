"""The hourglass family: config, block registry, the network, checkpoints."""
from compress.nets.config import HourglassConfig, InputSpec
from compress.nets.hourglass import StackedHourglass
from compress.nets.checkpoint import load, save, CheckpointInfo

__all__ = ["HourglassConfig", "InputSpec", "StackedHourglass", "load", "save", "CheckpointInfo"]
