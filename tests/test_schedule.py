"""Snapshot schedules: "epoch", every N steps, log-spaced."""

import pytest

import runs
from tensorboard_nnviz.record import schedule


def _run(sched, last_step, k=1, start=0):
    """Steps at which a hook firing every k steps takes a snapshot."""
    taken, prev = [], start
    for step in range(start + k, last_step + 1, k):
        if sched.due(prev, step):
            taken.append(step)
        prev = step
    return taken


def test_parse_spellings():
    assert isinstance(schedule.parse("epoch"), schedule.EpochSchedule)
    assert schedule.parse(5).n == 5
    assert isinstance(schedule.parse("log"), schedule.LogSchedule)
    assert schedule.parse("log").per_decade == 10
    custom = schedule.LogSchedule(per_decade=3)
    assert schedule.parse(custom) is custom


@pytest.mark.parametrize("bad", [0, -3, True, 2.5, "logs", "", None, "10"])
def test_parse_rejects_with_clear_message(bad):
    with pytest.raises(ValueError, match="snapshot_freq must be"):
        schedule.parse(bad)


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), True, "10"])
def test_log_schedule_rejects_bad_density(bad):
    with pytest.raises(ValueError, match="per_decade"):
        schedule.LogSchedule(per_decade=bad)


def test_every_n_with_hooks_every_step():
    assert _run(schedule.EverySchedule(4), 20) == [4, 8, 12, 16, 20]


@pytest.mark.parametrize("k", [1, 2, 3, 5, 7, 10, 11])
def test_every_n_with_hooks_every_k_steps_sees_each_crossing_once(k):
    n = 10
    taken = _run(schedule.EverySchedule(n), 200, k=k)
    # One snapshot per multiple of n passed over, at the first hook at or
    # after it (when k > n, several multiples share one hook).
    expected = sorted({-(-m // k) * k for m in range(n, 200 + 1, n) if -(-m // k) * k <= 200})
    assert taken == expected
    assert len(taken) == len(set(taken))


def test_every_n_never_twice_at_the_same_step():
    sched = schedule.EverySchedule(3)
    assert sched.due(2, 3)
    assert not sched.due(3, 3)  # the hook fired again at step 3
    assert not sched.due(3, 5)


def test_log_schedule_points_dense_early_sparse_late():
    sched = schedule.LogSchedule()
    points = sched.points(1000)
    assert points[:8] == [1, 2, 3, 4, 5, 6, 8, 10]
    assert points[-3:] == [631, 794, 1000]
    assert points == sorted(set(points))
    # 10 per decade once the spacing exceeds one step.
    assert len(sched.points(10 ** 5, start=10 ** 4)) == 10
    assert len(sched.points(10 ** 6, start=10 ** 5)) == 10
    # Each gap is about 26% of the step (10 ** 0.1 - 1).
    for a, b in zip(points, points[1:]):
        assert b - a <= 0.27 * a + 1  # + 1: rounding to whole steps


def test_log_schedule_density_option():
    assert schedule.LogSchedule(per_decade=1).points(10 ** 4) == [1, 10, 100, 1000, 10000]
    assert len(schedule.LogSchedule(per_decade=20).points(10 ** 6, start=10 ** 5)) == 20


@pytest.mark.parametrize("k", [1, 4, 32, 1000])
def test_log_schedule_with_hooks_every_k_steps(k):
    sched = schedule.LogSchedule()
    taken = _run(sched, 100000, k=k)
    want = sorted({-(-p // k) * k for p in sched.points(100000) if -(-p // k) * k <= 100000})
    assert taken == want
    assert len(taken) == len(set(taken))


def test_log_schedule_is_pure_around_boundaries():
    sched = schedule.LogSchedule()
    for p in sched.points(10 ** 7):
        assert sched.due(p - 1, p)
        assert not sched.due(p, p)
        assert sched.next_point(p - 1) == p


def test_counts_match_simulation():
    for sched in (schedule.EverySchedule(7), schedule.LogSchedule(), schedule.LogSchedule(3)):
        for start, end in ((0, 500), (37, 4000), (1000, 1000)):
            assert sched.count(start, end) == len(_run(sched, end, start=start))
    assert schedule.EpochSchedule().count(0, 100, epochs=12) == 12
    assert schedule.EverySchedule(5).count(None, 10) is None


def test_epoch_schedule_due_only_after_progress():
    sched = schedule.EpochSchedule()
    assert sched.per_epoch
    assert sched.due(0, 8)
    assert not sched.due(8, 8)  # an epoch of zero steps


# --- in a real fit (NNVizCallback's snapshot_freq) ---------------------------------


def test_callback_takes_log_spaced_snapshots(tmp_path):
    import keras_models

    keras_models.train_run(str(tmp_path), epochs=3, steps=10, snapshot_freq="log")
    assert runs.steps_of(str(tmp_path)) == [0, 1, 2, 3, 4, 5, 6, 8, 10, 13, 16, 20, 25]


def test_callback_log_schedule_with_steps_per_execution(tmp_path):
    import keras_models

    model, data = keras_models.build("mlp")
    keras_models.compile_model(model, steps_per_execution=4)
    keras_models.train_run(str(tmp_path), model=(model, data), epochs=3, steps=10,
                           snapshot_freq=schedule.LogSchedule(per_decade=10))
    # Hooks fire after steps 4, 8, 10 (epoch end), 14, 18, 20, 24, 28, 30:
    # one snapshot per hook that passed a log point, never two.
    points = schedule.LogSchedule().points(30)
    hooks = [4, 8, 10, 14, 18, 20, 24, 28, 30]
    want = [0] + [h for prev, h in zip([0] + hooks, hooks) if any(prev < p <= h for p in points)]
    assert want == [0, 4, 8, 10, 14, 18, 20, 28]
    assert runs.steps_of(str(tmp_path)) == want


def test_callback_rejects_a_bad_snapshot_freq(tmp_path):
    from tensorboard_nnviz import NNVizCallback

    with pytest.raises(ValueError, match="snapshot_freq must be 'epoch', 'log'"):
        NNVizCallback(str(tmp_path), snapshot_freq="sometimes")


def test_step_numbers_stay_after_every_step_written():
    steps = schedule.StepNumbers(last=None)
    assert steps.step(0) == 0
    steps.written(0)
    assert steps.step(4) == 4
    steps.written(4)
    # The count goes back (a new optimizer): numbering continues after 4.
    assert steps.step(0) == 5
    steps.written(5)
    assert steps.step(3) == 8  # and keeps that offset
    # A log_dir that already holds step 9: the first snapshot comes after it.
    assert schedule.StepNumbers(last=9).step(0) == 10


def test_tag_filter_is_include_then_exclude():
    wanted = schedule.tag_filter(include="kernel$", exclude="^skip/")
    assert [t for t in ("a/kernel", "a/bias", "skip/kernel") if wanted(t)] == ["a/kernel"]
    assert schedule.tag_filter()("anything")
    with pytest.raises(ValueError, match="include must be a regular expression"):
        schedule.tag_filter(include="(")  # at construction, not at the first snapshot
    with pytest.raises(ValueError, match="exclude must be a regular expression"):
        schedule.tag_filter(exclude=3)
