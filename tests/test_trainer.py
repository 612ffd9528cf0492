"""LoRA fine-tuning on transformers' Trainer (`grasp_env.lm.trainer.train_lora`)."""

import pytest
import torch

from grasp_env.config import TrainConfig
from grasp_env.data.embedded import embedded_target_splits
from grasp_env.data.splits import SplitSizes
from grasp_env.lm.backbone import load_backbone
from grasp_env.lm.batches import collate, encode_rows
from grasp_env.lm.host import LoraShape, attach_lora, lora_state
from grasp_env.lm.order import RowSampler, RowStream
from grasp_env.lm.pruning import PruneState, input_aware_importance, lora_parameters
from grasp_env.lm.trainer import PruneSpec, StartState, latest_checkpoint, train_lora

SHAPE = LoraShape(r=4, lora_alpha=16, lora_dropout=0.0, target_modules=("q_proj", "v_proj"))
RECIPE = TrainConfig(max_steps=6, eval_every=3, patience=0, lora_dropout=0.0)


@pytest.fixture(scope="module")
def backbone(tiny_backbone_dir):
    model, tok = load_backbone(tiny_backbone_dir)
    model.requires_grad_(False)
    return model, tok


@pytest.fixture(scope="module")
def splits(backbone):
    _, tok = backbone
    s = embedded_target_splits("qa", "ar", 0, SplitSizes(50, 50, 16, 30))
    return encode_rows(tok, s.train, "qa", "ar", 160), encode_rows(tok, s.dev[:8], "qa", "ar", 160)


def _random(base, seed, name="default"):
    model = attach_lora(base, SHAPE, seed, name=name)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in lora_parameters(model).values():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model


def test_training_changes_adapter_weights_and_never_the_backbone(backbone, splits):
    base, tok = backbone
    train, dev = splits
    model = attach_lora(base, SHAPE, 0)
    assert model.base_model.model is base  # the backbone is wrapped, never copied
    backbone_before = {k: v.clone() for k, v in model.named_parameters() if "lora_" not in k}
    before = lora_state(model)
    result = train_lora(model, train, dev, RECIPE, 0, tok.pad_token_id)
    # the untrained start is evaluated too (it may be the best state)
    assert [s for s, _ in result.dev_losses] == [0, 3, 6]
    assert result.steps == RECIPE.max_steps and len(result.train_losses) == RECIPE.max_steps
    # the model ends holding the best dev state
    best = lora_state(model)
    assert all(torch.equal(best[k], result.state[k]) for k in best)
    if result.best_step > 0:
        assert any(not torch.equal(before[k], best[k]) for k in before)
    for k, v in model.named_parameters():
        if "lora_" not in k:
            assert torch.equal(v, backbone_before[k]) and not v.requires_grad
    assert result.best_dev_loss == min(loss for _, loss in result.dev_losses)


def test_the_mask_holds_after_every_optimizer_step(backbone, splits):
    base, tok = backbone
    train, dev = splits
    model = _random(base, 3)
    spec = PruneSpec(0.6, "per_tensor", None, 0)
    result = train_lora(model, train, dev, RECIPE, 0, tok.pad_token_id, prune=spec)
    for p in lora_parameters(model).values():
        assert int((p == 0).sum()) >= int(0.6 * p.numel())
    for value in result.state.values():
        assert int((value == 0).sum()) >= int(0.6 * value.numel())  # the kept checkpoint too


def test_training_is_deterministic_for_a_seed(backbone, splits):
    base, tok = backbone
    train, dev = splits
    runs = []
    for _ in range(2):
        model = attach_lora(base, SHAPE, 5)
        runs.append(train_lora(model, train, dev, RECIPE, 5, tok.pad_token_id).train_losses)
    assert runs[0] == runs[1]


def test_early_stopping_stops_after_patience_evaluations_without_improvement(backbone, splits):
    base, tok = backbone
    train, dev = splits
    model = attach_lora(base, SHAPE, 0)
    # a learning rate that only makes the dev loss worse: every evaluation after the start is bad
    recipe = TrainConfig(learning_rate=5.0, max_steps=40, eval_every=2, patience=2)
    result = train_lora(model, train, dev, recipe, 0, tok.pad_token_id)
    assert result.stopped_early and result.steps == 4 and result.best_step == 0


def test_resume_from_a_trainer_checkpoint_equals_the_uninterrupted_run(backbone, splits, tmp_path):
    base, tok = backbone
    train, dev = splits
    recipe = TrainConfig(max_steps=9, eval_every=3, patience=0, lora_dropout=0.1)
    spec = PruneSpec(0.5, "per_tensor", None, 2)
    whole = train_lora(
        _random(base, 7), train, dev, recipe, 7, tok.pad_token_id, prune=spec,
        checkpoint_dir=tmp_path / "a",
    )  # fmt: skip
    # the same run, "killed" after its step-6 checkpoint: later checkpoints are gone
    train_lora(
        _random(base, 7), train, dev, recipe, 7, tok.pad_token_id, prune=spec,
        checkpoint_dir=tmp_path / "b",
    )  # fmt: skip
    for late in (tmp_path / "b").glob("checkpoint-9"):
        import shutil

        shutil.rmtree(late)
    assert latest_checkpoint(tmp_path / "b").name == "checkpoint-6"
    model = _random(base, 99)  # resumed weights come from the checkpoint, not from here
    resumed = train_lora(
        model, train, dev, recipe, 7, tok.pad_token_id, prune=spec,
        checkpoint_dir=tmp_path / "b", resume=True,
    )  # fmt: skip
    assert resumed.train_losses == whole.train_losses
    assert resumed.dev_losses == whole.dev_losses and resumed.best_step == whole.best_step
    assert all(torch.equal(resumed.state[k], whole.state[k]) for k in whole.state)


def test_input_aware_rebuild_every_step(backbone, splits):
    base, tok = backbone
    train, dev = splits
    model = _random(base, 8)
    imp = input_aware_importance(model, [collate(train.encodings[:8], tok.pad_token_id)])
    spec = PruneSpec(0.5, "per_tensor", imp, 1)
    train_lora(model, train, dev, RECIPE, 0, tok.pad_token_id, prune=spec)
    for p in lora_parameters(model).values():
        assert int((p == 0).sum()) >= p.numel() // 2


def test_a_continuation_carries_optimizer_mask_stash_and_row_position(backbone, splits):
    base, tok = backbone
    train, dev = splits
    model = _random(base, 9, name="ctl")
    params = lora_parameters(model)
    optimizer = torch.optim.AdamW(list(params.values()), lr=1e-3)
    for p in params.values():  # one optimizer step before: AdamW's state holds step 1
        p.grad = torch.ones_like(p)
    optimizer.step()
    state = PruneState(params)
    state.commit(params, state.masks_at(params, 0.6), optimizer)
    pruned_values = {n: state.stash[n][~state.keep[n]].clone() for n in params}
    # the stream the run continues: positions 0..4 were trained on
    start = StartState(optimizer.state_dict(), state, stream_seed=4, position=5)
    recipe = TrainConfig(max_steps=3, eval_every=3, patience=0, lora_dropout=0.0)
    seen_rows = []
    original = RowSampler.__iter__

    def spy(self):
        for row in original(self):
            seen_rows.append(row)
            yield row

    RowSampler.__iter__ = spy
    try:
        spec = PruneSpec(0.6, "per_tensor", None, 0)
        train_lora(model, train, dev, recipe, 0, tok.pad_token_id, prune=spec, start=start)
    finally:
        RowSampler.__iter__ = original
    stream = RowStream(len(train), 4)
    assert seen_rows[:3] == [stream.row(i) for i in range(5, 8)]  # the rows it would read next
    # the optimizer continued (AdamW's step counts 1 + 3), and the mask and stash are the
    # carried ones: the same entries pruned, their stashed values kept
    steps = {int(v["step"]) for v in optimizer.state.values()}
    assert steps == {4}
    for n in params:
        assert torch.equal(state.stash[n][~state.keep[n]], pruned_values[n])


def test_the_cheap_bookkeeping_returns_what_upstream_logs(backbone, splits):
    """The Trainer's FLOP count and logged gradient norm, taken cheaply, equal upstream's."""
    from accelerate import Accelerator
    from transformers import Trainer

    from grasp_env.lm.batches import answer_loss
    from grasp_env.lm.trainer import _make_classes, _Training

    if not hasattr(Trainer, "_get_grad_norm"):
        pytest.skip("this transformers has no Trainer._get_grad_norm: the override is not called")
    base, tok = backbone
    train, _ = splits
    model = _random(base, 5)
    batch = collate(train.encodings[:4], tok.pad_token_id)
    answer_loss(model, batch).backward()
    trainer_class, _ = _make_classes()
    trainer = object.__new__(trainer_class)  # only what the two methods read, no training set-up
    trainer.model, trainer.accelerator, trainer._flop_params = model, Accelerator(cpu=True), None
    trainer._mixed_mesh_grads = None
    trainer.training = _Training(lora_parameters(model), None, None, None, 0)
    ours, upstream = trainer._get_grad_norm(model), Trainer._get_grad_norm(trainer, model)
    assert float(ours) > 0 and torch.allclose(ours, upstream)
    flops = Trainer.floating_point_ops(trainer, batch)
    assert flops > 0 and trainer.floating_point_ops(batch) == flops
    model.num_parameters = None  # counted once: a second count would fail here
    try:
        assert trainer.floating_point_ops(batch) == flops
    finally:
        del model.num_parameters  # the PEFT wrapper is shared with the tests that follow


def test_training_forwards_run_in_train_mode_and_dev_forwards_in_eval_mode(backbone, splits):
    """The cheap per-step mode switch keeps the modes right: dropout on in training only."""
    base, tok = backbone
    train, dev = splits
    model = _random(base, 6)
    seen = []

    def record(module, args):
        modes = {m.training for m in model.modules()}
        seen.append((torch.is_grad_enabled(), modes))

    hook = model.base_model.model.register_forward_pre_hook(record)
    try:
        model.eval()  # a caller's mode before the run must not leak into the training steps
        train_lora(model, train, dev, RECIPE, 0, tok.pad_token_id)
    finally:
        hook.remove()
    steps = [modes for grad, modes in seen if grad]
    evals = [modes for grad, modes in seen if not grad]
    assert len(steps) == RECIPE.max_steps and evals
    assert all(modes == {True} for modes in steps)
    assert all(modes == {False} for modes in evals)
    # the per-run shortcuts are gone afterwards: the model's own methods again
    assert "train" not in vars(model) and "zero_grad" not in vars(model)


def test_lean_mode_switches_skip_only_a_repeated_train_and_clear_lora_gradients(backbone, splits):
    from grasp_env.lm.batches import answer_loss
    from grasp_env.lm.trainer import _lean_mode_switches

    base, tok = backbone
    train, _ = splits
    model = _random(base, 7)
    params = lora_parameters(model)
    some_module = next(m for m in model.modules() if m is not model)
    with pytest.raises(RuntimeError), _lean_mode_switches(model, params):
        model.eval()
        assert not any(m.training for m in model.modules())
        model.train()  # a real switch: every module follows
        assert all(m.training for m in model.modules())
        some_module.eval()
        model.train()  # already training: returns at once, no walk over the modules
        assert not some_module.training
        answer_loss(model, collate(train.encodings[:2], tok.pad_token_id)).backward()
        assert all(p.grad is not None for p in params.values())
        model.zero_grad()
        assert all(p.grad is None for p in params.values())
        raise RuntimeError("the shortcuts go even when the run fails")
    assert "train" not in vars(model) and "zero_grad" not in vars(model)
    model.train()  # the model's own train walks again
    assert some_module.training
