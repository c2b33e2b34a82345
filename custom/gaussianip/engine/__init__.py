"""The training loops that both hosts (our CLI and the threestudio system) drive."""

from gaussianip.engine.stage1 import Stage1Config, Stage1Trainer

__all__ = ["Stage1Config", "Stage1Trainer"]
