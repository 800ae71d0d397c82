# One virtual environment, made on first use. The CPU build of torch goes in first so that
# pip never resolves the multi-GB CUDA build; override TORCH for another build.
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
PY     := $(VENV)/bin/python
# RLlib pins Gymnasium (ray 2.60: gymnasium==1.2.2), so its tests run in a second environment.
VENV_RLLIB ?= .venv-rllib
PY_RLLIB   := $(VENV_RLLIB)/bin/python
COMMA      := ,

.PHONY: run test bench install install-rllib clean

# $(call make-venv,DIR,EXTRAS)
define make-venv
	$(PYTHON) -m venv $(1)
	$(1)/bin/python -m pip install -q --upgrade pip
	$(1)/bin/python -m pip install -q "$(TORCH)"
	$(1)/bin/python -m pip install -q "$(TORCH)" -e ".[$(2)]"
	touch $(1)/.installed
endef

$(VENV)/.installed: pyproject.toml
	$(call make-venv,$(VENV),test$(COMMA)mocap$(COMMA)distributed)

install: $(VENV)/.installed

$(VENV_RLLIB)/.installed: pyproject.toml
	$(call make-venv,$(VENV_RLLIB),test$(COMMA)mocap$(COMMA)rllib)

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
