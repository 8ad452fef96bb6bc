"""The whole training path can learn: overfitting one generated scene reaches AP50 >= 0.9."""


def test_overfitting_one_scene_reaches_ap50(overfit_run):
    print(f"loss {overfit_run.first_loss:.3f} -> {overfit_run.last_loss:.3f}, {overfit_run.metrics}")  # margins
    assert overfit_run.last_loss < 0.2 * overfit_run.first_loss
    assert overfit_run.metrics["ap50"] >= 0.9, overfit_run.metrics
    assert overfit_run.metrics["miou"] > 0.5
