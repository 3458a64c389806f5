# OneStack: the two set-up commands.
#   make up     install what is missing, start the all-in-one cloud (foreground)
#   make test   install what is missing, lint (ruff, mypy), run the whole test suite
# Both are idempotent; ARGS passes arguments through: make up ARGS="--port 5001"

PYTHON ?= python3
VENV ?= .venv
ARGS ?=
PYTEST_ARGS ?=
# Debian packages the project needs on the host (binaries checked before apt-get runs).
APT_PACKAGES ?= qemu-utils dnsmasq-base dnsmasq-utils iproute2 nftables iptables genisoimage
# The test image build (onestack image build-test) and its boot test.
APT_PACKAGES += busybox-static syslinux syslinux-common mtools dosfstools cpio qemu-system-x86
# The dashboard's browser tests (tests/dashboard): Playwright drives this Chromium.
APT_PACKAGES += chromium
# Host tests and the README tour reach guests as users do: ssh (and ssh-keygen) to a
# floating IP, ping.
APT_PACKAGES += openssh-client iputils-ping
# The Linux firewall driver deletes the conntrack entries of removed security group
# rules with the conntrack tool (as Neutron does).
APT_PACKAGES += conntrack

# Only the rbd backend needs Ceph (`make ceph-deps`; `make test` runs the Ceph tests):
# a one-machine cluster (onestack ceph up), the Python bindings and QEMU's rbd driver.
CEPH_PACKAGES ?= ceph-mon ceph-mgr ceph-osd ceph-common python3-rados python3-rbd qemu-block-extra

STAMP := $(VENV)/.installed

.PHONY: up test deps system-deps ceph-deps lint clean conformance

up: deps
	$(VENV)/bin/onestack up $(ARGS)

# The in-process suites (API, unit, contract: fake drivers, no shared host resources)
# run on TEST_WORKERS pytest-xdist workers; every other suite (real servers, guests,
# Ceph, the browser) then runs one test at a time. Both run even if the first fails.
PARALLEL_TESTS ?= tests/api tests/unit tests/contract
TEST_WORKERS ?= 2

test: deps ceph-deps lint
	@rc=0; \
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) $(PARALLEL_TESTS) $(PYTEST_ARGS) || rc=$$?; \
	$(VENV)/bin/python -m pytest tests $(foreach d,$(PARALLEL_TESTS),--ignore=$(d)) \
	  $(PYTEST_ARGS) || rc=$$?; \
	exit $$rc

deps: system-deps $(STAMP)

system-deps:
	@bash scripts/install-system-deps.sh $(APT_PACKAGES)

# python3-rados/python3-rbd are not on PyPI: the venv sees Debian's two modules (and
# nothing else of the system's site-packages) through a .pth file naming a directory
# that holds only links to them.
ceph-deps: deps
	@bash scripts/install-system-deps.sh $(CEPH_PACKAGES)
	@mkdir -p $(VENV)/lib/ceph-bindings
	@for m in rados rbd; do ln -sf $$(/usr/bin/python3 -c "import $$m; print($$m.__file__)") \
	  $(VENV)/lib/ceph-bindings/; done
	@echo "$(abspath $(VENV))/lib/ceph-bindings" > \
	  $$($(VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/onestack-ceph.pth
	@$(VENV)/bin/python -c 'import rados, rbd' || (echo "the venv can't import rados/rbd"; exit 1)

$(STAMP): pyproject.toml
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || bash scripts/install-system-deps.sh python3-venv
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

# ruff, then mypy over the package (its settings in pyproject.toml; incremental, so a
# second run takes a second or two).
lint: deps
	$(VENV)/bin/ruff check onestack tests bench
	$(VENV)/bin/python -m mypy

# OpenStack's conformance suite (Tempest, in its own venv under build/) against a fresh
# `onestack up`; not part of `make test`. ARGS: --services identity,compute,... --real
# (real drivers in a namespace; root; run under `heavy`) --validation (with --real:
# Tempest logs in to its guests over SSH), see docs/conformance.md
conformance: deps
	$(VENV)/bin/python tools/conformance/run.py $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
