# One virtual environment, made on first use. The CPU build of torch goes in first so that
# pip never resolves the multi-GB CUDA build; override TORCH for another build.
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
PY     := $(VENV)/bin/python
# RLlib pins Gymnasium (ray 2.60: gymnasium==1.2.2), so its tests run in a second environment.
VENV_RLLIB ?= .venv-rllib
PY_RLLIB   := $(VENV_RLLIB)/bin/python

.PHONY: run test bench install install-rllib clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q "$(TORCH)" -e ".[test,mocap,distributed]"
	touch $@

install: $(VENV)/.installed

$(VENV_RLLIB)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV_RLLIB)
	$(PY_RLLIB) -m pip install -q --upgrade pip
	$(PY_RLLIB) -m pip install -q "$(TORCH)"
	$(PY_RLLIB) -m pip install -q "$(TORCH)" -e ".[test,mocap,rllib]"
	touch $@

install-rllib: $(VENV_RLLIB)/.installed

run: install
	$(PY) scripts/quickstart.py

test: install
	$(PY) -m ruff check .
	$(PY) -m pytest -n 2 -q
	$(MAKE) --no-print-directory install-rllib
	$(PY_RLLIB) -m pytest -q -m rllib

bench: install
	$(PY) -m pip install -q "$(TORCH)" -e ".[bench]"
	$(PY) benchmarks/gridworld_speed.py --quick
	$(PY) benchmarks/body_model.py
	$(PY) benchmarks/deep_agents.py --quick
	$(PY) benchmarks/imitation_env.py --quick
	$(PY) benchmarks/generative_samples.py --quick

clean:
	rm -rf $(VENV) $(VENV_RLLIB) runs
