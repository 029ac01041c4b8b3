"""Every focus move the acquisition autofocus commands is safe, whatever the model says.

Property-based: random drift, random model outputs (NaN, infinities, absurd values, low
confidence, bimodal, exceptions), random settings and policies; the spy sits at the
microscope adapter, where a correction becomes a hardware command.
"""

from __future__ import annotations

import math

import pytest

pytest.importorskip("pymmcore_plus")
useq = pytest.importorskip("useq")

from _acq_fakes import (
    FakePrediction,
    FunctionDrift,
    TruthModel,
    no_waits,
    simulated_core,
    timed_sim,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_zfocus.acquisition.autofocus import AcquisitionAutofocus
from napari_zfocus.acquisition.settings import AutofocusSettings
from napari_zfocus.live.mmcore import MMCoreMicroscope
from napari_zfocus.live.stage_safety import is_safe_move

ODD = st.sampled_from([
    None, None, None,  # the truth, most of the time
    FakePrediction(math.nan, math.nan, 0.9),
    FakePrediction(math.inf, math.inf, 0.9),
    FakePrediction(-1e300, -1e300, 0.9),
    FakePrediction(60.0, 60.0, 0.99),
    FakePrediction(-45.0, -45.0, 0.99),
    FakePrediction(3.0, 3.0, 0.01),
    FakePrediction(-9.0, -9.0, 0.9, True),
    FakePrediction(2.0, 2.0, math.nan),
    RuntimeError("model failed"),
])


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    drift_steps=st.lists(st.floats(-40, 40), min_size=4, max_size=4),
    outputs=st.lists(ODD, min_size=30, max_size=30),
    max_step=st.floats(0.2, 10.0),
    travel=st.one_of(st.none(), st.floats(1.0, 80.0)),
    limits=st.one_of(st.none(), st.tuples(st.floats(-60, -1), st.floats(1, 60))),
    policy=st.sampled_from(["hold", "skip"]),
)
def test_every_autofocus_move_is_safe(drift_steps, outputs, max_step, travel, limits, policy):
    cumulative = [0.0]
    for step in drift_steps:
        cumulative.append(cumulative[-1] + step)
    sim = timed_sim(FunctionDrift(lambda t: cumulative[min(int(t // 600), 4)]))
    moves = []
    original = MMCoreMicroscope.move_z_to

    def spy(self, z_um):
        moves.append((self.get_z(), float(z_um)))
        return original(self, z_um)

    def script(n):
        return outputs[n % len(outputs)]

    settings_ = AutofocusSettings(max_step_um=max_step, max_travel_um=travel,
                                  z_limits_um=limits, policy=policy)
    with simulated_core(sim, z_limits_um=(-500.0, 500.0)) as core:
        model = TruthModel(sim, core, script=script)
        af = AcquisitionAutofocus(core, model, settings_)
        seq = useq.MDASequence(time_plan={"interval": 600, "loops": 5})
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(MMCoreMicroscope, "move_z_to", spy)
            with af, no_waits(sim, core):
                core.mda.run(seq)
        records = af.records
    lo, hi = limits if limits is not None else (-1e4, 1e4)
    lock_z = 0.0  # the only position starts at z = 0
    if travel is not None:
        lo, hi = max(lo, lock_z - travel), min(hi, lock_z + travel)
    for before, target in moves:
        assert is_safe_move(before, target, lo, hi, max_step), (before, target, lo, hi)
    for record in records:
        assert record.max_move_um <= max_step
        assert math.isfinite(record.focus_z_um) or record.decision != "corrected"
