# One way to run each thing; every target installs the pinned environment first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JB_FLAGS ?= -W -n --keep-going
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: all install book test bench lab assign grade report similarity export record clean

all: install

$(STAMP): pyproject.toml tools/pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]" -e "./tools[reports]"
	@# kernels on 127.0.0.1 warn at every start that TCP is unencrypted: noise for a student; errors still show
	@mkdir -p $(VENV)/etc/ipython && echo '{"IPKernelApp": {"log_level": "ERROR"}}' > $(VENV)/etc/ipython/ipython_kernel_config.json
	@touch $(STAMP)

install: $(STAMP)  ## create .venv with the pinned versions

assign: install  ## student notebooks + autograder zips into _assign/ (and the student copies the book shows)
	$(BIN)/python -m course_tools.grading.assign --book

book: assign  ## build the website into _build/html
	$(BIN)/jupyter-book build . $(JB_FLAGS)
	@echo "The book is built: open file://$(CURDIR)/_build/html/index.html"

test: install  ## the whole test suite: unit tests, nbval, grading, the book build, the browser
	@$(if $(findstring not browser,$(PYTEST_ARGS)),true,chromium="$$($(BIN)/python -m course_tools.browser)" || exit 1; export COURSE_CHROMIUM="$$chromium";) \
	$(BIN)/python -m pytest -n auto --dist loadgroup $(PYTEST_ARGS)

bench: install  ## time make install and make test from a fresh clone of HEAD, per test group (on an idle machine)
	$(BIN)/python -m course_tools.bench $(BENCH_ARGS)

lab: install  ## JupyterLab on your own copies of the labs, work/ (made once, never overwritten); flags in LAB_ARGS
	$(BIN)/python -m course_tools.workspace
	$(BIN)/jupyter lab --notebook-dir=work $(LAB_ARGS)

grade: install  ## make grade LAB=00_getting_started SUBMISSIONS=path/to/folder [GRADE_ARGS="--jobs 2 --timeout 600"]
	@if [ -z "$(LAB)" ] || [ -z "$(SUBMISSIONS)" ]; then echo "usage: make grade LAB=00_getting_started SUBMISSIONS=path/to/folder [GRADE_ARGS=...]"; exit 2; fi
	@[ -f _assign/$(LAB)/questions.json ] || $(BIN)/python -m course_tools.grading.assign $(LAB)
	$(BIN)/python -m course_tools.grading.batch $(LAB) $(SUBMISSIONS) $(GRADE_ARGS)

report: install  ## make report LAB=00_getting_started [RUN=_grades/LAB/<date-time>]: scores, tests, failures and times of a run, as HTML and CSV in its report/
	@if [ -z "$(LAB)$(RUN)" ]; then echo "usage: make report LAB=00_getting_started [RUN=_grades/00_getting_started/<date-time>]"; exit 2; fi
	$(BIN)/python -m course_tools.grading.report $(LAB) $(if $(RUN),--run $(RUN))

similarity: install  ## make similarity LAB=00_getting_started SUBMISSIONS=path/to/folder [EARLIER="dir ..."]: pairs of submissions that share code, ranked
	@if [ -z "$(LAB)" ] || [ -z "$(SUBMISSIONS)" ]; then echo 'usage: make similarity LAB=00_getting_started SUBMISSIONS=path/to/folder [EARLIER="dir ..."] [SIMILARITY_ARGS=...]'; exit 2; fi
	@[ -f _assign/$(LAB)/student/$(LAB).ipynb ] || $(BIN)/python -m course_tools.grading.assign $(LAB)
	$(BIN)/python -m course_tools.grading.similarity $(LAB) $(SUBMISSIONS) $(if $(EARLIER),--earlier $(EARLIER)) $(SIMILARITY_ARGS)

export: install  ## make export LAB=00_getting_started [RUN=...] [MAP=ids.csv] [SUBMISSIONS=...]: a run's gradebook for Canvas, and keyed by student, in its export/
	@if [ -z "$(LAB)$(RUN)" ]; then echo "usage: make export LAB=00_getting_started [RUN=_grades/00_getting_started/<date-time>] [MAP=ids.csv] [EXPORT_ARGS=...]"; exit 2; fi
	$(BIN)/python -m course_tools.grading.export $(LAB) $(if $(RUN),--run $(RUN)) $(if $(MAP),--map $(MAP)) $(if $(SUBMISSIONS),--submissions $(SUBMISSIONS)) $(EXPORT_ARGS)

record: install  ## make record LAB=04_skips_unpooling_unets [PROFILE=cpu] [SEEDS="0 1 2"]: a lab's results file, one run per seed
	@if [ -z "$(LAB)" ]; then echo 'usage: make record LAB=04_skips_unpooling_unets [PROFILE=cpu] [SEEDS="0 1 2"]'; exit 2; fi
	$(BIN)/python -m course_tools.record $(LAB) --profile $(or $(PROFILE),cpu) --seeds $(or $(SEEDS),0 1 2)

clean:  ## remove everything generated (keeps .venv, and work/, which is yours)
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m course_tools.grading.assign --remove-book-copies; else rm -rf labs/*/student; fi
	rm -rf _build _assign _grades .pytest_cache
