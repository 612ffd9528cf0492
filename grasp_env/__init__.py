"""GRASP LoRA Gym: learn the prune ratio of merged cross-lingual LoRA adapters online.

Importing this package is cheap: it registers `grasp_env/GraspLoRA-v1` with Gymnasium, and
torch, transformers, peft and trl are imported only inside the functions that need them.

    import gymnasium as gym
    import grasp_env  # noqa: F401  (registers the environment)
    env = gym.make("grasp_env/GraspLoRA-v1", preset="tiny")
"""

from gymnasium.envs.registration import register, registry

__version__ = "0.1.0"

ENV_ID = "grasp_env/GraspLoRA-v1"

if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="grasp_env.env:GraspLoRAEnv")

__all__ = ["ENV_ID", "__version__"]
