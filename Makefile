# The two commands a new user runs: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
OUT ?= outputs/demo
# The real RealEstate10K clips (<id>.mp4 + <id>.txt) that configs/bench/re10k/demo.yaml names; skipped when absent
REAL = ../shared/real/re10k

.PHONY: setup demo test test-fast bench clean

# torch is installed by exact version only when missing: an unpinned torch would pull a multi-GB CUDA build.
setup:
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install "torch==2.13.0"
	@$(PYTHON) -m pip install -q -e ".[dev]"

# The embedded default (weights/mvtrack-S) re-renders held-out synthetic clips: source | generated | ground truth,
# with PSNR/SSIM beside the copy-source baseline and the ground-truth-depth warp; then one real clip's odd frames
# from its even ones (beside the stereo + splat reference); then the engine's own clips.
demo: setup
	$(PYTHON) -m mvtrack demo --out $(OUT)/rerender
	@if [ -d "$(REAL)" ]; then \
	  $(PYTHON) -m mvtrack bench --config configs/bench/re10k/demo.yaml \
	    --checkpoint weights/mvtrack-S --method stereo_splat --method copy_source --no-cameras --no-tracks \
	    --out $(OUT)/real; \
	else echo "no real clips at $(REAL) (configs/bench/re10k/demo.yaml's root): real-footage step skipped"; fi
	$(PYTHON) -m mvtrack synth --num 2 --views 4 --frames 16 --size 128 --seed 0 --split test --out $(OUT)/engine/shards
	$(PYTHON) -m mvtrack viz $(OUT)/engine/shards --out $(OUT)/engine

test: setup
	$(PYTHON) -m pytest -q

test-fast: setup
	$(PYTHON) -m pytest -q -m "not slow"

bench: setup
	$(PYTHON) benchmarks/synth_throughput.py
	$(PYTHON) benchmarks/train_throughput.py

clean:
	rm -rf outputs .pytest_cache
