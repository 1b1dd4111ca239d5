# netdoctor.calico — every target installs what it needs (Debian 12, as root).
SHELL := /bin/bash
.DEFAULT_GOAL := help
ROOT := $(CURDIR)
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
COLL_ROOT := $(ROOT)/.collections/ansible_collections
# Collections we reuse (ansible.posix.sysctl, community.general.modprobe), taken from the
# ansible community package on PyPI that matches our ansible-core 2.19.
ANSIBLE_BUNDLE := ansible==12.3.0
DEBS := iproute2 iputils-ping procps kmod bird openssh-server network-manager dbus libglib2.0-bin nftables rsync git shellcheck etcd-server etcd-client chromium prometheus iptables
LAB := $(ROOT)/tests/lab/labctl
DEMO_LAB := demo

export ANSIBLE_CONFIG := $(ROOT)/ansible.cfg
export PATH := $(VENV)/bin:$(PATH)

.PHONY: help install venv node-venv debs collections lint sanity unit integration molecule test bench demo demo-down clean

help:
	@echo "make demo   - lab with seed faults -> audit -> repair -> audit clean -> ping 100%"
	@echo "make test   - everything that must pass: lint, sanity, unit, lab integration"
	@echo "make bench  - speed and memory figures"

install: venv debs collections node-venv

venv: $(VENV)/.stamp
$(VENV)/.stamp: requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

# Installs only what is missing; policy-rc.d keeps apt from starting sshd/NetworkManager/BIRD
# on the host: the lab starts its own copies inside namespaces.
debs:
	@missing=$$(for p in $(DEBS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; \
	  trap 'rm -f /usr/sbin/policy-rc.d' EXIT; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

collections: venv $(COLL_ROOT)/netdoctor/calico $(COLL_ROOT)/ansible/posix/MANIFEST.json
$(COLL_ROOT)/netdoctor/calico:
	mkdir -p $(COLL_ROOT)/netdoctor
	ln -sfn $(ROOT) $@
$(COLL_ROOT)/ansible/posix/MANIFEST.json:
	mkdir -p .cache/wheels
	$(PY) -m pip download -q --disable-pip-version-check --no-deps -d .cache/wheels "$(ANSIBLE_BUNDLE)"
	$(PY) -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); \
	  z.extractall(sys.argv[2], [n for n in z.namelist() if n.startswith(("ansible_collections/ansible/posix/", "ansible_collections/community/general/"))])' \
	  .cache/wheels/ansible-12.3.0-py3-none-any.whl .collections

lint: install
	$(VENV)/bin/ruff check plugins tests bench
	# ansible-test sanity's pep8 settings (ruff has no E12x continuation-line rules), so lint fails first.
	$(VENV)/bin/pycodestyle --max-line-length 160 --ignore=E402,W503,W504,E741,E203,E701,E704 \
	  $$(git ls-files '*.py') tests/lab/labctl tests/lab/kubectl
	# Node code must run on the Python of the nodes ansible-core 2.19 manages (3.8+).
	$(VENV)/bin/vermin -t=3.8- --no-tips --violations -q plugins/module_utils plugins/modules
	$(VENV)/bin/yamllint -s .
	$(VENV)/bin/ansible-lint --offline

sanity: install
	bash tests/sanity/run.sh

unit: install
	$(VENV)/bin/pytest -q --no-skips tests/unit
	# Node code on the oldest pyroute2 it supports (Debian 12's 0.7.2), in a venv of its own.
	$(NODE_VENV)/bin/python -m pytest -q --no-skips -p no:cacheprovider tests/unit/plugins/module_utils

# A node's Python with the distributions' oldest supported pyroute2: the node-side unit tests and one
# lab audit (tests/integration/test_distro_pyroute2.py) run with it.
NODE_VENV := $(ROOT)/.venv-pyroute2-0.7.2
node-venv: $(NODE_VENV)/.stamp
$(NODE_VENV)/.stamp: requirements.txt
	test -x $(NODE_VENV)/bin/python || python3 -m venv $(NODE_VENV)
	$(NODE_VENV)/bin/pip install -q --disable-pip-version-check pyroute2==0.7.2 \
	  $$(grep -iE '^(pytest|pluggy|iniconfig|packaging|Pygments|PyYAML|jsonschema|jsonschema-specifications|referencing|rpds-py|attrs|ansible-core|jinja2|markupsafe|cryptography|cffi|pycparser|resolvelib)==' requirements.txt)
	touch $@

integration: install
	$(VENV)/bin/pytest -q --no-skips tests/integration

# The lab-backed scenario (molecule/default): create, check, converge, idempotence, verify, destroy.
molecule: install
	cd $(ROOT) && $(VENV)/bin/molecule test

# The collection as Galaxy, docs.ansible.com, ansible-builder and ansible-test see it: galaxy-importer on the
# built tarball, antsibull-docs lint, EE introspection, changelog lint, ansible-test units (tests/ecosystem/run.sh).
.PHONY: ecosystem
ecosystem: install
	bash tests/ecosystem/run.sh

test: install lint sanity unit ecosystem integration molecule

bench: install
	for b in bench/*.py; do $(PY) $$b || exit 1; done

DEMO_REPORTS := $(ROOT)/reports/demo

# A lab with one fault from each incident write-up -> audit (names each on its node) -> repair
# -> audit clean -> all-pairs ping 100%.
demo: install
	$(LAB) down --name $(DEMO_LAB)
	$(LAB) up --name $(DEMO_LAB) --nodes 6 --mode ipip --pods-per-node 2 --extra-nic > /dev/null
	@echo "== healthy lab: all-pairs pod ping"; $(LAB) ping --name $(DEMO_LAB) | tail -n 1
	$(LAB) fault --name $(DEMO_LAB) stale-route --node node2 > /dev/null
	$(LAB) fault --name $(DEMO_LAB) src-asym --node node3 > /dev/null
	$(LAB) fault --name $(DEMO_LAB) no-ip-forward --node node4 > /dev/null
	$(LAB) fault --name $(DEMO_LAB) nm-unmanaged-overridden --node node5 > /dev/null
	$(LAB) fault --name $(DEMO_LAB) autodetect-wrong-nic --node node6 > /dev/null
	@echo "== with faults: all-pairs pod ping"; $(LAB) ping --name $(DEMO_LAB) | tail -n 1 || true
	rm -rf $(DEMO_REPORTS) && mkdir -p $(DEMO_REPORTS)
	ansible-playbook netdoctor.calico.audit -i "$$($(LAB) inventory --name $(DEMO_LAB))" \
	  -e audit_report_dir=$(DEMO_REPORTS)/audit -e audit_fail_on=never > $(DEMO_REPORTS)/audit.log
	@echo "== the audit names each fault on its node (warning and above):"
	@$(PY) -c 'import json, sys; r = json.load(open(sys.argv[1])); \
	  [print("   %-7s %-6s %-9s %s" % (f["id"], f["host"], f["severity"], f["summary"])) for f in r["findings"] if f["severity"] != "info"]' \
	  $(DEMO_REPORTS)/audit/report.json
	@echo "== HTML report: $(DEMO_REPORTS)/audit/report.html"
	ansible-playbook netdoctor.calico.repair -i "$$($(LAB) inventory --name $(DEMO_LAB))" \
	  -e repair_report_dir=$(DEMO_REPORTS)/repair -e repair_kubectl=$(ROOT)/tests/lab/kubectl \
	  -e repair_kubeconfig="$$($(LAB) kubeconfig --name $(DEMO_LAB))" > $(DEMO_REPORTS)/repair.log
	@echo "== what the repair changed:"; sed -n '/^## Changes/,/^## Findings/p' $(DEMO_REPORTS)/repair/repair.md | grep '^- '
	ansible-playbook netdoctor.calico.audit -i "$$($(LAB) inventory --name $(DEMO_LAB))" \
	  -e audit_report_dir=$(DEMO_REPORTS)/audit-after -e audit_fail_on=warning > $(DEMO_REPORTS)/audit-after.log
	@echo "== audit after the repair: nothing at warning or above ($(DEMO_REPORTS)/audit-after/report.html)"
	@echo "== after the repair: all-pairs pod ping"; $(LAB) ping --name $(DEMO_LAB) | tail -n 1
	@echo "== before/after: $(DEMO_REPORTS)/repair/repair.md   inventory: $$($(LAB) inventory --name $(DEMO_LAB))   (make demo-down)"

demo-down:
	$(LAB) down --name $(DEMO_LAB)

clean:
	rm -rf .collections .cache build reports .pytest_cache
