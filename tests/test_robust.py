"""The cheap corner of ``make robust``: digits trainings that once collapsed on the device train like
float32 (on the golden model, bit-identical to the gateware)."""

from __future__ import annotations

import numpy as np
import pytest

from host.compiler import Network
from host.data import digits
from host.driver import Driver
from host.reference import Reference
from host.train import Trainer
from hw.config import DeviceConfig


@pytest.mark.parametrize("network, epochs", [
    (Network((64, 32, 10)), 60),                    # collapsed to 10 % with every tensor in ACT
    (Network((64, 32, 10), batch=8), 20),           # collapsed to 10 % at epoch 20
], ids=["60-epochs", "batch-8"])
def test_digits_does_not_collapse(network, epochs):
    train, test = digits(seed=0)
    with Driver.open("model", config=DeviceConfig()) as driver:
        trainer = Trainer(driver, network, seed=0, x=train.x)
        initial = trainer.initial_weights()
        trainer.load(initial)
        rng, accuracy = np.random.default_rng(0), []
        for epoch in range(1, epochs + 1):
            trainer.train_epoch(train, rng, epoch)
            if epoch >= 20 and epoch % 10 == 0:
                accuracy.append(float(np.mean(trainer.predict(test.x) == test.y)))
    reference = Reference.from_raw(trainer.program, initial)
    rng = np.random.default_rng(0)
    for _ in range(epochs):
        reference.train_epoch(train, rng)
    float32 = float(np.mean(reference.predict(test.x) == test.y))
    assert min(accuracy) >= 0.95, accuracy
    assert accuracy[-1] >= float32 - 0.015, (accuracy, float32)
