"""Session-wide test settings."""

import torch


def pytest_configure(config):
    # The suite runs as two pytest-xdist workers on two cores, and its networks are tiny:
    # intra-op threads would only make the workers fight over the cores.
    torch.set_num_threads(1)
