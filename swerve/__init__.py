"""swerve: SWE-bench-style evaluation, teacher trajectories and RL environments on real repositories."""

__version__ = "0.1.0"
