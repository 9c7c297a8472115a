# Set-up and entry points. `make test` is the README's test command and what CI runs.
VENV ?= .venv
PY := $(VENV)/bin/python
export BAGTRICKS_CACHE ?= $(HOME)/.cache/bagtricks

.PHONY: setup test demo grid figures bench bench-e2e bench-data gpu-check clean-venv data-packages

# Re-runs only when the installer or the project's dependencies change; the mmcv wheel is cached
# in $(BAGTRICKS_CACHE). MMCV_WHEEL=path/to/mmcv-2.1.0-*.whl installs a prebuilt one (e.g. CUDA).
setup: $(VENV)/.installed

$(VENV)/.installed: tools/install_stack.sh pyproject.toml
	VENV=$(VENV) bash tools/install_stack.sh
	touch $@

# Debian packages with the real data the tests and the demo use (skipped where apt is missing).
data-packages:
	@if command -v apt-get >/dev/null; then \
	  dpkg -s labelme-examples dataset-fashion-mnist >/dev/null 2>&1 || \
	  { apt-get update -qq && apt-get install -y -qq labelme-examples dataset-fashion-mnist >/dev/null; }; \
	else echo "apt-get not available: tests that need labelme-examples will be skipped"; fi

# The main job on embedded real data (Fashion-MNIST from Debian's dataset-fashion-mnist): pretrain a
# ResNet-D with cosine + label smoothing + mixup, then transfer it to Faster R-CNN and FCN.
DEMO_DIR ?= work_dirs/demo
demo: setup data-packages
	$(PY) tools/prepare_fashion.py --out data/fashion --train-limit 15000
	$(PY) tools/plot_lr.py configs/cls/fashion_d_cosine_ls_mixup.py --iters-per-epoch 58 --world-size 1 \
	  --out $(DEMO_DIR)/lr_schedule.png
	$(PY) tools/transfer_grid.py --rows d_mixup --work-dir $(DEMO_DIR) --out $(DEMO_DIR)
	@echo "lr schedule plot: $(DEMO_DIR)/lr_schedule.png; TensorBoard: tensorboard --logdir $(DEMO_DIR)"

# The paper's Tables 6-8 at Fashion-MNIST scale, every row x seeds 0, 1, 2 (about 1 h 20 min on 2 quiet cores;
# re-run to continue where it stopped).
grid: setup data-packages
	$(PY) tools/prepare_fashion.py --out data/fashion --train-limit 15000
	$(PY) tools/transfer_grid.py --rows all --seeds $(or $(SEEDS),0 1 2) --work-dir work_dirs/fashion_grid \
	  --out results/fashion_grid

# The paper's Figures 3 and 4 redrawn from the committed logs and per-image logit gaps in results/figures/,
# and the grid's table and chart from its committed cell records (no training; how they were made: docs/grid.md).
FIG := results/figures
figures: setup
	$(PY) tools/plot_schedules.py $(FIG)/runs/fashion_d_efficient $(FIG)/runs/fashion_d_cosine \
	  --labels "step decay (fashion_d_efficient)" "cosine (fashion_d_cosine)" --out $(FIG)/figure3_schedules.png
	$(PY) tools/plot_logit_gap.py --from-gaps $(FIG)/logit_gaps.json --out $(FIG)/figure4_logit_gap.png
	$(PY) tools/transfer_grid.py --from-results results/fashion_grid/results.json --out results/fashion_grid
	$(PY) tools/transfer_grid.py --from-results results/fashion_grid_long/results.json --out results/fashion_grid_long

# Training throughput of ResNet-50-D (fp32 / bf16 / channels-last) vs torchvision ResNet-50 on this machine.
bench: setup
	$(PY) tools/benchmark_train.py

# End to end: tools/pretrain.py vs a plain PyTorch loop on real-photo JPEGs, interleaved (6.6 min on 2 AMD EPYC cores, measured).
bench-e2e: setup data-packages
	$(PY) tools/benchmark_e2e.py $(BENCH_ARGS)

# Input pipeline per core: worker side and whole pipeline vs stock torchvision v2, interleaved (about 1 min).
bench-data: setup data-packages
	$(PY) tools/benchmark_data.py $(BENCH_ARGS)

# First GPU machine, one command, <= 8 min: results/gpu_check.json + README's gpu-check section (no CUDA: plumbing dry run, exit 0).
GPU_PY ?= $(if $(wildcard $(PY)),$(PY),python3)
gpu-check:
	$(GPU_PY) tools/gpu_check.py $(GPU_CHECK_ARGS)

test: setup data-packages
	$(PY) -m pytest -q tests

clean-venv:
	rm -rf $(VENV)
