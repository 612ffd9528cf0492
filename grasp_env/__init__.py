"""GRASP LoRA Gym: learn the prune ratio of merged cross-lingual LoRA adapters online.

Importing this package is cheap: it registers the environments with Gymnasium, and torch,
transformers, peft and trl are imported only inside the functions that need them.

    import gymnasium as gym
    import grasp_env  # noqa: F401  (registers the environments)
    from grasp_env.config import ExperimentConfig

    env = gym.make("grasp_env/GraspLoRA-v1", config=ExperimentConfig.from_preset("tiny"))
    fast = gym.make("grasp_env/GraspLoRASurrogate-v1", instances="test-final")
"""

from gymnasium.envs.registration import register, registry

__version__ = "0.1.0"

ENV_ID = "grasp_env/GraspLoRA-v1"
"""The live environment: a real LM process (`grasp_env.env.GraspLoRAEnv`)."""
SURROGATE_ENV_ID = "grasp_env/GraspLoRASurrogate-v1"
"""The same environment on surrogate processes (`grasp_env.surrogate_env`)."""

if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="grasp_env.env:GraspLoRAEnv")
if SURROGATE_ENV_ID not in registry:
    register(id=SURROGATE_ENV_ID, entry_point="grasp_env.surrogate_env:GraspLoRASurrogateEnv")

__all__ = ["ENV_ID", "SURROGATE_ENV_ID", "__version__"]
