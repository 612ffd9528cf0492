"""GRASP LoRA Gym: learn the prune ratio of merged cross-lingual LoRA adapters online.

Importing this package is cheap: torch, transformers, peft and trl are imported only inside the
functions that need them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
