# Two commands for a newcomer (see README):
#   make run    set everything up (in .venv) and run the main job
#   make test   set everything up (in .venv) and run the tests
PYTHON ?= python3
VENV ?= .venv
# x86_64 Linux: CUDA build from PyPI (this machine takes them from its local wheel store).
# Override e.g. `make test TORCH_PINS="torch==2.9.1 torchvision==0.24.1"` on aarch64.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
TORCHATTACKS ?= torchattacks==3.5.1
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test bench notebooks clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(TORCH_PINS)
	$(BIN)/python -m pip install -e '.[dev]'
	# torchattacks pins requests~=2.25.1 (MLflow 3 needs >=2.28.1): install it without its
	# pins, after its real runtime needs came in through pyproject.toml.
	$(BIN)/python -m pip install --no-deps $(TORCHATTACKS)
	$(BIN)/python -c "import mlflow, torchattacks; assert int(mlflow.__version__.split('.')[0]) >= 3, mlflow.__version__"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m search.run

test: $(STAMP)
	$(BIN)/python -m pytest

# JupyterLab on notebooks/ (installs the `notebooks` extra into .venv first)
notebooks: $(STAMP)
	$(BIN)/python -m pip install -e '.[notebooks]'
	$(BIN)/jupyter lab notebooks/

bench: $(STAMP)
	$(BIN)/python bench/bench_noise.py
	$(BIN)/python bench/bench_train_step.py

clean:
	rm -rf $(VENV)
