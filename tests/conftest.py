"""Session-wide test settings and shared fixtures."""

import logging
import os

# Before any test module imports MuJoCo: headless rendering needs EGL (mimicgym sets the
# same default, but a test may import mujoco first).
os.environ.setdefault("MUJOCO_GL", "egl")
# The suite's reference numbers (stable-baselines3 parity, pinned curves, seeded samples) are
# CPU results and its tests build CPU tensors: device="auto" means the CPU here, also on a GPU
# machine. MIMICGYM_DEVICE=auto runs the models on CUDA where present.
os.environ.setdefault("MIMICGYM_DEVICE", "cpu")

import pytest  # noqa: E402
import torch  # noqa: E402


def pytest_configure(config):
    # The suite runs as two pytest-xdist workers on two cores, and its networks are tiny:
    # intra-op threads would only make the workers fight over the cores.
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def ray_session():
    """A new local Ray on two CPUs for one test module (never a cluster already on the machine)."""
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield ray
    ray.shutdown()
