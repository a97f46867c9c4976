"""Shared training machinery: schedule, budget planning, optimizer groups, non-finite steps."""

import math

import pytest
import torch

from distilkit.errors import ConfigError
from distilkit.runtime import setup_runtime
from distilkit.train import loop


def _optimizer():
    model = torch.nn.Linear(3, 2)
    return model, loop.build_optimizer(model, lr=1.0, weight_decay=0.01)


def test_linear_schedule_warms_up_then_decays_to_zero():
    _, optimizer = _optimizer()
    scheduler = loop.linear_schedule(optimizer, warmup_steps=2, total_steps=6)
    lrs = []
    for _ in range(6):
        lrs.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([0.5, 1.0, 1.0, 0.75, 0.5, 0.25])
    assert scheduler.get_last_lr()[0] == 0.0


def test_replanned_schedule_survives_state_dict_round_trip():
    _, optimizer = _optimizer()
    scheduler = loop.linear_schedule(optimizer, 0, 1000)
    loop.replan_schedule(scheduler, warmup_ratio=0.0, total_steps=10)
    _, other_optimizer = _optimizer()
    restored = loop.linear_schedule(other_optimizer, 0, 1000)
    restored.load_state_dict(scheduler.state_dict())
    assert restored.lr_lambdas[0].total_steps == 10


def test_steps_within_budget():
    # 1 s per step measured between step 1 (t=2 s) and step 5 (t=6 s); 60 s budget → 54 s left → step 59.
    assert loop.steps_within_budget(5, 6.0, 1, 2.0, 60.0) == 59
    assert loop.steps_within_budget(5, 70.0, 1, 2.0, 60.0) == 5  # already over budget


def test_no_weight_decay_on_biases():
    model, optimizer = _optimizer()
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert decay["params"][0] is model.weight and no_decay["params"][0] is model.bias


def test_non_finite_gradient_skips_the_update():
    model, optimizer = _optimizer()
    scheduler = loop.linear_schedule(optimizer, 0, 10)
    before = model.weight.detach().clone()
    (model(torch.ones(1, 3)).sum() * float("nan")).backward()
    grad_norm, stepped = loop.optimizer_step(model, optimizer, scheduler, None, 1.0)
    assert not stepped and math.isnan(grad_norm)
    assert torch.equal(model.weight, before)
    assert all(p.grad is None for p in model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    _, stepped = loop.optimizer_step(model, optimizer, scheduler, None, 1.0)
    assert stepped and not torch.equal(model.weight, before)


def test_runtime_rejects_unavailable_choices():
    with pytest.raises(ConfigError, match="precision"):
        setup_runtime("cpu", "fp8")
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
        setup_runtime("cpu", "fp16")
    runtime = setup_runtime("cpu", "bf16")
    assert runtime.amp_dtype == torch.bfloat16 and runtime.world_size == 1
    assert setup_runtime("cpu", "auto").amp_dtype is None
