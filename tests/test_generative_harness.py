"""The generative harness and its CLI: run directories, exact resume, evaluation, samples, errors."""

from __future__ import annotations

import json

import pytest
import torch

from mimicgym.cli import main
from mimicgym.errors import CheckpointError, ConfigError
from mimicgym.generative.baselines import FactorizedBernoulli
from mimicgym.generative.data import digits
from mimicgym.generative.train import Trainer, fit
from mimicgym.runs.generative import GenConfig, config_from_record, evaluate_run, sample_run, train_generative


def _config(tmp_path, **kw):
    return GenConfig(**{"model": "FactorizedBernoulli", "lr": 0.05, "logdir": str(tmp_path), "progress_bar": False,
                        "sample_every": 2, **kw})


def test_resume_continues_bit_exactly(tmp_path):
    straight = train_generative(_config(tmp_path / "a", epochs=6))
    first = train_generative(_config(tmp_path / "b", epochs=3))
    resumed = train_generative(resume=first.run_dir, epochs=6, progress_bar=False)
    assert [r.train_loss for r in resumed.history] == [r.train_loss for r in straight.history]
    assert [r.valid_nll for r in resumed.history] == [r.valid_nll for r in straight.history]
    assert torch.equal(resumed.model.logits, straight.model.logits)
    assert resumed.test_nll == straight.test_nll
    progress = json.loads((first.run_dir / "progress.json").read_text())
    assert [step for step, _ in progress["valid/nll"]] == [1, 2, 3, 4, 5, 6]
    record = json.loads((first.run_dir / "config.json").read_text())
    assert record["config"]["epochs"] == 6 and record["resumes"][0]["at_epoch"] == 3


def test_grey_probability_targets_are_an_option_kept_on_resume(tmp_path, capsys):
    assert main(["gen", "train", "FVSBN", "--epochs", "1", "--logdir", str(tmp_path), "--no-progress",
                 "--sampled-targets"]) == 0
    config = tmp_path / "gen_FVSBN_digits_s0" / "config.json"
    record = json.loads(config.read_text())
    assert record["config"]["rao_blackwell"] is False
    assert GenConfig().train_config().rao_blackwell is True
    # A run recorded before the option existed trained on sampled pixels, and resumes so.
    del record["config"]["rao_blackwell"]
    config.write_text(json.dumps(record))
    assert config_from_record(config.parent).rao_blackwell is False


def test_eval_and_samples_reproduce_the_run(tmp_path):
    result = train_generative(_config(tmp_path, epochs=4))
    saved = json.loads((result.run_dir / "eval.json").read_text())
    assert evaluate_run(result.run_dir)["test_nll_nats"] == pytest.approx(saved["test_nll_nats"], abs=1e-9)
    # A factorised Bernoulli fitted on the digits lands near the data's per-pixel entropy (about 27.4 nats).
    assert 26.5 < saved["test_nll_nats"] < 30.0
    assert (result.run_dir / "samples" / "epoch_0004.png").is_file()
    path = sample_run(result.run_dir, 9, seed=3)
    assert path.read_bytes() == sample_run(result.run_dir, 9, tmp_path / "again.png", seed=3).read_bytes()


def test_cli_train_eval_sample(tmp_path, capsys):
    assert main(["gen", "train", "FactorizedBernoulli", "--epochs", "2", "--lr", "0.05", "--logdir", str(tmp_path),
                 "--no-progress"]) == 0
    run = tmp_path / "gen_FactorizedBernoulli_digits_s0"
    assert main(["gen", "eval", str(run)]) == 0
    assert main(["gen", "sample", str(run), "-n", "4"]) == 0
    out = capsys.readouterr().out
    assert "test NLL" in out and (run / "samples_n4_s0.png").is_file()


@pytest.mark.parametrize("argv, message", [
    (["gen", "train", "Nope"], "unknown model 'Nope'"),
    (["gen", "train", "FactorizedBernoulli", "--set", "hidden=3"], "no hyperparameter 'hidden'"),
    (["gen", "train", "FactorizedBernoulli", "--data", "mnist"], "unknown data set 'mnist'"),
    (["gen", "train", "FactorizedBernoulli", "--epochs", "0"], "epochs must be a positive int"),
    (["gen", "eval", "/nonexistent/run"], "no such run directory"),
])
def test_cli_errors_are_one_line(tmp_path, capsys, argv, message):
    assert main([*argv, *(["--logdir", str(tmp_path)] if argv[1] == "train" else [])]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not any(tmp_path.iterdir())  # bad input made no run directory


def test_corrupt_model_file_is_a_checkpoint_error(tmp_path):
    result = train_generative(_config(tmp_path, epochs=1))
    data = (result.run_dir / "model.pt").read_bytes()
    (result.run_dir / "model.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.pt"):
        evaluate_run(result.run_dir)


def test_nan_loss_stops_naming_the_step():
    model = FactorizedBernoulli((1, 8, 8))
    trainer = Trainer(model, digits("train", binarize=False)[:128], epochs=1, batch_size=32)
    with torch.no_grad():
        model.logits[0, 0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match=r"loss \(epoch 1, step 0\)"):
        trainer.run_epoch()


def test_fit_is_deterministic_and_seeded():
    train, valid = digits("train", binarize=False)[:256], digits("valid")
    runs = [fit(FactorizedBernoulli((1, 8, 8)), train, valid, epochs=3, lr=0.05, seed=s) for s in (0, 0, 1)]
    losses = [[r.train_loss for r in history] for history in runs]
    assert losses[0] == losses[1] and losses[0] != losses[2]


def test_config_refuses_bad_values():
    with pytest.raises(ConfigError, match="lr"):
        GenConfig(model="FactorizedBernoulli", lr=-1.0)
    with pytest.raises(ConfigError, match="sample_every"):
        GenConfig(model="FactorizedBernoulli", sample_every=-1)


def test_vqvae_run_fits_its_prior_and_reloads_with_it(tmp_path):
    small = {"hidden": 16, "prior_layers": 1, "prior_d_model": 16, "prior_heads": 2}
    result = train_generative(_config(tmp_path, model="VQVAE", epochs=1, prior_epochs=2, lr=1e-3,
                                      hyperparameters=small))
    model = result.model
    codes = model.encode(digits("test")[:8])
    uniform = codes[0].numel() * torch.log(torch.tensor(float(model.config.codebook_size)))
    assert not torch.allclose(model.prior_nll(codes), uniform.expand(8))  # the prior was fitted
    saved = json.loads((result.run_dir / "eval.json").read_text())
    assert saved["is_bound"] is True
    assert evaluate_run(result.run_dir)["test_nll_nats"] == pytest.approx(saved["test_nll_nats"], abs=1e-9)


def test_autoencoder_run_reports_reconstruction_not_nll(tmp_path):
    result = train_generative(_config(tmp_path, model="Autoencoder", epochs=2, lr=1e-3))
    saved = json.loads((result.run_dir / "eval.json").read_text())
    assert set(saved) == {"test_reconstruction_error", "test_frechet_distance", "test_examples"}
    assert saved["test_reconstruction_error"] == pytest.approx(result.test_nll)
    assert result.model.sample(4).shape == (4, 1, 8, 8)  # codes' Gaussian fitted at the end


def test_motion_data_holds_out_whole_motions():
    from mimicgym.runs.generative_data import MOTION_LEVELS, load_data

    data = load_data("motion", 0)
    assert data.model_kwargs == {"vocab_size": MOTION_LEVELS} and data.per_example == data.train.shape[1]
    assert min(len(data.train), len(data.valid), len(data.test)) > 100
    # No test window appears in training: the windows of one clip overlap, so clips are split.
    train_rows = {tuple(row) for row in data.train.tolist()}
    assert not any(tuple(row) in train_rows for row in data.test.tolist())
    assert int(data.train.min()) >= 0 and int(data.train.max()) < MOTION_LEVELS


def test_cosine_schedule_anneals_by_epoch():
    model = FactorizedBernoulli((1, 8, 8))
    trainer = Trainer(model, digits("train", binarize=False)[:64], epochs=4, lr=0.1, lr_schedule="cosine")
    rates = []
    while not trainer.stop:
        trainer.run_epoch()
        rates.append(trainer.optimizers["model"].param_groups[0]["lr"])
    assert rates == pytest.approx([0.1, 0.1 * (1 + 2**-0.5) / 2, 0.05, 0.1 * (1 - 2**-0.5) / 2])
    with pytest.raises(ConfigError, match="lr_schedule.*'linear'"):
        Trainer(model, digits("train", binarize=False)[:64], lr_schedule="linear")


def test_vae_run_writes_traversals_and_interpolations(tmp_path):
    import imageio.v3 as iio

    result = train_generative(_config(tmp_path, model="VAE", epochs=1, lr=1e-3, hyperparameters={"latent_dim": 4}))
    traversals = iio.imread(result.run_dir / "traversals.png")
    interpolations = iio.imread(result.run_dir / "interpolations.png")
    # 4 latents x 9 values and 8 pairs x 9 steps of 8x8 images, 1-pixel padding, 4x scale.
    assert traversals.shape[:2] == (4 * (4 * 9 + 1), 4 * (9 * 9 + 1))
    assert interpolations.shape[:2] == (4 * (8 * 9 + 1), 4 * (9 * 9 + 1))


def test_flow_on_2d_points_reports_nll_and_sample_quality(tmp_path):
    result = train_generative(_config(tmp_path, model="RealNVP", data="eight_gaussians", epochs=4, lr=1e-3,
                                      batch_size=256))
    saved = json.loads((result.run_dir / "eval.json").read_text())
    # Four epochs: far below the best single Gaussian (4.26 nats), above the entropy (2.83).
    assert 2.83 < saved["test_nll_nats"] < 3.5
    assert saved["modes_covered"] >= 6 and 0 < saved["test_energy_distance"] < 0.2
    assert evaluate_run(result.run_dir)["test_energy_distance"] == saved["test_energy_distance"]
    assert (result.run_dir / "samples.png").read_bytes()[:4] == b"\x89PNG"


def test_conditional_ddpm_run_resumes_exactly_and_samples_with_guidance(tmp_path):
    options = {"model": "DDPM", "lr": 2e-3, "batch_size": 128,
               "hyperparameters": {"num_classes": 10, "timesteps": 20, "widths": [8, 16]}}
    straight = train_generative(_config(tmp_path / "a", epochs=2, **options))
    first = train_generative(_config(tmp_path / "b", epochs=1, **options))
    resumed = train_generative(resume=first.run_dir, epochs=2, progress_bar=False)
    assert [r.train_loss for r in resumed.history] == [r.train_loss for r in straight.history]
    saved = json.loads((straight.run_dir / "eval.json").read_text())
    assert set(saved) == {"test_denoising_loss", "test_frechet_distance", "test_examples"}
    assert 0 < saved["test_denoising_loss"] < 1.0
    path = sample_run(straight.run_dir, 10, seed=1, sampler="ddim", steps=5, guidance=2.0, condition=7)
    assert path.read_bytes() == sample_run(straight.run_dir, 10, tmp_path / "again.png", seed=1, sampler="ddim",
                                           steps=5, guidance=2.0, condition=7).read_bytes()


@pytest.mark.parametrize("model, data, message", [
    ("MADE", "eight_gaussians", "MADE models binary data; data set 'eight_gaussians'"),
    ("RealNVP", "markov", "RealNVP models real data; data set 'markov'"),
])
def test_model_and_data_that_do_not_fit_are_refused(tmp_path, model, data, message):
    with pytest.raises(ConfigError, match=message):
        train_generative(_config(tmp_path, model=model, data=data))
    assert not any(tmp_path.iterdir())


def test_conditional_model_needs_labelled_data(tmp_path):
    with pytest.raises(ConfigError, match="class-conditional.*no labels"):
        train_generative(_config(tmp_path, model="DDPM", data="two_moons", hyperparameters={"num_classes": 2}))


def test_gan_run_is_judged_by_its_samples(tmp_path):
    result = train_generative(_config(tmp_path, model="GAN", data="eight_gaussians", epochs=3, lr=1e-3,
                                      batch_size=256, hyperparameters={"hidden": [64, 64]}))
    saved = json.loads((result.run_dir / "eval.json").read_text())
    assert set(saved) == {"test_energy_distance", "modes_covered", "test_examples"}  # no likelihood, no loss
    assert evaluate_run(result.run_dir) | {"run": None} == {**saved, "run": None, "model": "GAN",
                                                            "data": "eight_gaussians"}
    progress = json.loads((result.run_dir / "progress.json").read_text())
    assert {"train/loss", "train/discriminator_loss"} <= progress.keys() and "valid/None" not in progress


def test_latent_diffusion_and_controlnet_build_on_trained_runs(tmp_path):
    vae = train_generative(_config(tmp_path, model="VAE", epochs=2, lr=1e-3,
                                   hyperparameters={"decoder": "gaussian", "latent_dim": 4}))
    latent = train_generative(_config(tmp_path, model="LatentDiffusion", base_run=str(vae.run_dir), epochs=2,
                                      lr=1e-3, hyperparameters={"timesteps": 20}))
    saved = json.loads((latent.run_dir / "eval.json").read_text())
    assert 0 < saved["test_denoising_loss"] < 1.5 and saved["test_frechet_distance"] > 0
    assert evaluate_run(latent.run_dir)["test_denoising_loss"] == saved["test_denoising_loss"]  # scale restored
    ddpm = train_generative(_config(tmp_path, model="DDPM", epochs=2, lr=2e-3, hyperparameters={
        "timesteps": 20, "widths": [8, 16], "num_classes": 10, "clip_sample": 1.0}))
    control = train_generative(_config(tmp_path, model="ControlNet", base_run=str(ddpm.run_dir), epochs=3,
                                       lr=2e-3, hyperparameters={"hint_widths": [8, 8]}))
    saved = json.loads((control.run_dir / "eval.json").read_text())
    assert {"test_sketch_error", "frozen_sketch_error"} <= saved.keys()
    # Trained for three epochs, the branch already steers samples towards the sketches asked for.
    assert saved["test_sketch_error"] < 0.9 * saved["frozen_sketch_error"]
    assert sample_run(control.run_dir, 4, condition=3).is_file()


@pytest.mark.parametrize("options, message", [
    ({"model": "ControlNet"}, "ControlNet builds on a trained DDPM run: pass --base-run"),
    ({"model": "DDPM", "base_run": "x"}, "--base-run is for LatentDiffusion and ControlNet"),
])
def test_base_run_errors(tmp_path, options, message):
    with pytest.raises(ConfigError, match=message):
        _config(tmp_path, **options)


def test_base_run_of_the_wrong_model_is_refused(tmp_path):
    run = train_generative(_config(tmp_path, epochs=1)).run_dir
    with pytest.raises(ConfigError, match="ControlNet builds on a DDPM run; .* is a FactorizedBernoulli run"):
        train_generative(_config(tmp_path, model="ControlNet", base_run=str(run)))


def test_continuous_models_see_motion_windows_as_series():
    from mimicgym.runs.generative_data import MARKOV_LENGTH, load_data

    tokens, series = load_data("motion", 0), load_data("motion", 0, "real")
    assert series.view == "series" and series.train.shape == (len(tokens.train), 1, MARKOV_LENGTH)
    assert series.train.dtype == torch.float32 and float(series.train.abs().max()) <= 1.0
    # The same windows: mu-law quantising the series gives the token view exactly.
    from mimicgym.generative.wavenet import mu_law_encode

    assert torch.equal(mu_law_encode(series.test[:, 0], levels=64), tokens.test)
