# Two commands do all set-up on a fresh Debian machine (as root): `make demo`, `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := tesseract-ocr tesseract-ocr-eng libtesseract-dev libleptonica-dev pkg-config \
	mosquitto-clients \
	mosquitto postgresql chromium chromium-driver socat fonts-dejavu-core
STAMP_APT := $(VENV)/.apt-done
STAMP_PIP := $(VENV)/.pip-done
PPOCR_MODEL_VERSION := 1.4.4

.PHONY: all setup test lint typecheck pytest demo clean

all: test

$(STAMP_APT):
	@mkdir -p $(VENV)
	@missing=""; for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@# the packaged broker and database must not hold the default ports; tests start their own
	@-systemctl disable --now mosquitto >/dev/null 2>&1 || true
	@-systemctl disable --now postgresql >/dev/null 2>&1 || true
	@touch $@

$(STAMP_PIP): pyproject.toml Makefile $(STAMP_APT)
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@# the PP-OCR recognition model (OCR's second engine): only the model file inside this
	@# wheel is used, run by OpenCV, so its own dependencies (onnxruntime, a second OpenCV)
	@# are not installed
	$(PY) -m pip install -q --no-deps 'rapidocr-onnxruntime==$(PPOCR_MODEL_VERSION)'
	@touch $@

setup: $(STAMP_PIP)

lint: setup
	$(VENV)/bin/ruff check .

typecheck: setup
	$(VENV)/bin/mypy gated drivers ocr rfid tos_bridge hwsim

# two workers: most tests wait on sockets and subprocesses, so two halve the wall time even on
# two cores; the longest tests are handed out first (tests/conftest.py)
PYTEST := $(VENV)/bin/pytest -q -n 2 --dist worksteal

pytest: setup
	$(PYTEST)

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy gated drivers ocr rfid tos_bridge hwsim
	$(PYTEST)

demo: setup
	$(PY) scripts/demo.py

clean:
	rm -rf $(VENV) build *.egg-info
