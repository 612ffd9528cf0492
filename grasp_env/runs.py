"""Run directories shared by every runner: naming, refusing to overwrite, atomic JSON writes."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["RoundLogger", "RunDirError", "config_markdown", "make_run_dir", "write_json"]


class RunDirError(ValueError):
    """A run directory that exists and may not be overwritten."""


def make_run_dir(out_dir: str | Path, run_name: str, overwrite: bool = False) -> Path:
    """Create `out_dir/run_name`; an existing non-empty one is an error unless `overwrite`.

    Nothing already written is ever deleted here: with `overwrite`, files are replaced one by
    one as the new run writes them.
    """
    path = Path(out_dir) / run_name
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise RunDirError(
            f"run directory {str(path)!r} already exists; fix: pass --run-name with a new name, "
            "or --overwrite to replace its files"
        )
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically (temporary file in the same directory, then rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, ensure_ascii=False, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def config_markdown(config: dict[str, Any]) -> str:
    """A two-column markdown table of a (flattened) config: TensorBoard's first write."""
    rows = ["| key | value |", "|---|---|"]
    for key, value in _flatten(config):
        rows.append(f"| {key} | {value} |")
    return "\n".join(rows)


def _flatten(config: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.extend(_flatten(value, name + "."))
        else:
            out.append((name, value))
    return out


class RoundLogger:
    """One writer per run: TensorBoard tags under fixed prefixes and history.jsonl.

    Tags (all against the optimizer-step axis of the controller run):
    `controller/candidate_ratios` (histogram), `rewards/mean|std|max`,
    `rewards/frac_reward_zero_std`, `controller/mu|sigma|committed_ratio|learned_ratio`,
    `env/baseline_loss`, `env/achieved_sparsity`, `losses/train` (per optimizer step), then
    `eval/*` once at the end.
    """

    def __init__(self, run_dir: Path, config: dict[str, Any]) -> None:
        """Open the writer and write the config table first."""
        from torch.utils.tensorboard import SummaryWriter

        self.run_dir = run_dir
        self.writer = SummaryWriter(log_dir=str(run_dir))
        self.writer.add_text("config", config_markdown(config), 0)
        self.history_path = run_dir / "history.jsonl"
        self.history_path.write_text("")

    def round(self, record: dict[str, Any]) -> None:
        """Log one finished controller round."""
        import numpy as np

        step = int(record["step"])
        rewards = np.asarray(record["rewards"], dtype=float)
        w = self.writer
        w.add_histogram("controller/candidate_ratios", np.asarray(record["ratios"]), step)
        w.add_scalar("rewards/mean", float(rewards.mean()), step)
        w.add_scalar("rewards/std", float(rewards.std()), step)
        w.add_scalar("rewards/max", float(rewards.max()), step)
        for key in ("frac_reward_zero_std", "mu", "sigma"):
            if key in record:
                prefix = "rewards" if key.startswith("frac") else "controller"
                w.add_scalar(f"{prefix}/{key}", float(record[key]), step)
        w.add_scalar("controller/committed_ratio", float(record["committed_ratio"]), step)
        w.add_scalar("controller/learned_ratio", float(record["learned_ratio"]), step)
        w.add_scalar("env/baseline_loss", float(record["baseline_loss"]), step)
        w.add_scalar("env/achieved_sparsity", float(record["achieved_sparsity"]), step)
        for i, loss in enumerate(record.get("train_losses", [])):
            w.add_scalar("losses/train", float(loss), step - len(record["train_losses"]) + i + 1)
        with self.history_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=float) + "\n")

    def final(self, metrics: dict[str, float], hparams: dict[str, Any], step: int) -> None:
        """Final metrics under eval/ and the HPARAMS view; closes the writer."""
        for key, value in metrics.items():
            self.writer.add_scalar(f"eval/{key}", float(value), step)
        clean = {
            k: v if isinstance(v, int | float | str | bool) else str(v) for k, v in hparams.items()
        }
        self.writer.add_hparams(
            clean, {f"hparam/{k}": float(v) for k, v in metrics.items()}, run_name="."
        )
        self.writer.close()
