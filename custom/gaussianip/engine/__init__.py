"""The training loops and the pipeline that both hosts (our CLI and the threestudio
system) drive."""

from gaussianip.engine.reconstruction import ReconstructionConfig, Reconstructor
from gaussianip.engine.stage1 import Stage1Config, Stage1Trainer

__all__ = ["ReconstructionConfig", "Reconstructor", "Stage1Config", "Stage1Trainer"]
