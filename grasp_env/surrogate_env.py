"""GraspLoRASurrogate-v1: GraspLoRA-v1 on surrogate processes, a benchmark for controllers.

The environment is `grasp_env.env.GraspLoRAEnv` itself (same spaces, reward, commit rule, stash
semantics, budget and episode end); only the process behind it differs: a
`grasp_env.surrogate.SurrogateProcess` whose micro-dev losses come from an `Instance` (a curve
family with its parameters, a noise model and a seed), drawn at every reset from an instance
set. The live environment and the surrogate are two processes behind one interface, so an agent
moves between them unchanged. A step costs microseconds; regret is read from the instance's
true curve (`Instance.regret`), which `info["regret"]` reports for the learned ratio so far.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from grasp_env.config import ControllerConfig, ExperimentConfig
from grasp_env.env import GraspLoRAEnv
from grasp_env.surrogate import Instance, SurrogateProcess, instance_set

__all__ = ["GraspLoRASurrogateEnv"]


class GraspLoRASurrogateEnv(GraspLoRAEnv):
    """GraspLoRA-v1's controller run on a surrogate process (`grasp_env/GraspLoRASurrogate-v1`).

    ## Description
    As GraspLoRA-v1 (see its docstring: the spec of spaces, rewards and episode end), with the
    losses of a surrogate `Instance` instead of a live LM: curves replayed from the real
    process's probes (`real` family: four pairs, three seeds) or drawn from a library of shapes
    (cliffs, plateaus, optima that move while training, two basins, ...) with measured noise
    models (`grasp_env.surrogate`).

    ## Starting State
    Every `reset` takes an instance: `options={"instance": ...}` (an `Instance`, an index into
    the set or an instance's name), otherwise the next one of the set in turn. A seeded reset
    without an instance restarts the turn at `seed % len(set)`, so the same seed gives the same
    instance and the same episode.

    ## Arguments
    `config` / `controller` as GraspLoRA-v1 (the controller's `train_steps` is the budget;
    default 150 = the paper's 15 rounds of K=10); `instances`: 'test-final' (the default) or
    'train-final', whose final runs pay the capacity cost the live grids measured, 'test' or
    'train' (the same instances without it), 'smoke' (one per family;
    `grasp_env.surrogate.instance_set`) or a sequence of `Instance`s.

    ## Info
    GraspLoRA-v1's keys, plus `instance` (the instance's name) and, in the info of the step that
    ends the episode, `regret`: the regret of its learned ratio (the configured p* rule) on the
    instance's true curve, in [0, 1] (not before: a p* fit per step would cost more than the
    step).

    ## Version History
    - v1: GraspLoRA-v1's semantics on `grasp_env.surrogate` processes.
    """

    def __init__(
        self,
        config: ExperimentConfig | None = None,
        *,
        controller: ControllerConfig | None = None,
        instances: str | Sequence[Instance] = "test-final",
        render_mode: str | None = None,
    ) -> None:
        """Draw episodes from `instances`; the budget is the controller's train_steps."""
        ctrl = controller or (config.controller if config is not None else ControllerConfig())
        if ctrl.train_steps is None:
            ctrl = replace(ctrl, train_steps=150)
        self.instances = list(instance_set(instances) if isinstance(instances, str) else instances)
        if not self.instances:
            raise ValueError(
                "instances is empty; fix: pass 'train-final', 'test-final' or instances"
            )
        self._cursor = 0
        self.instance = self.instances[0]
        process = SurrogateProcess(self.instance, budget=ctrl.train_steps)
        super().__init__(config, controller=ctrl, process=process, render_mode=render_mode)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start a controller run on the chosen (or the next) instance."""
        wanted = (options or {}).get("instance")
        if wanted is not None:
            self.instance = self._lookup(wanted)
        else:
            if seed is not None:
                self._cursor = seed % len(self.instances)
            self.instance = self.instances[self._cursor]
            self._cursor = (self._cursor + 1) % len(self.instances)
        self.process = SurrogateProcess(self.instance, budget=self.budget)
        return super().reset(seed=seed, options=options)

    def _lookup(self, wanted: Any) -> Instance:
        if isinstance(wanted, Instance):
            return wanted
        if isinstance(wanted, int) and not isinstance(wanted, bool):
            if not 0 <= wanted < len(self.instances):
                raise ValueError(
                    f"options['instance']={wanted} is outside the set's {len(self.instances)} "
                    f"instances; fix: use an index in [0, {len(self.instances) - 1}]"
                )
            return self.instances[wanted]
        named = [i for i in self.instances if i.name == wanted]
        if not named:
            raise ValueError(
                f"options['instance']={wanted!r} names no instance of the set; fix: pass an "
                "Instance, an index, or one of env.get_wrapper_attr('instances')'s names"
            )
        return named[0]

    def _get_info(self) -> dict[str, Any]:
        info = super()._get_info()
        info["instance"] = self.instance.name
        if getattr(self, "_done", False) and self.termination:
            info["regret"] = self.instance.regret(self.learned_ratio())
        return info
