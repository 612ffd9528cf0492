"""The language-model side of GRASP LoRA Gym.

Backbones, batches, LoRA adapters, merging, pruning, presets and the adapter pipeline. Nothing
here knows about the environment or the agents.
"""
