# One command each: `make demo` (the full stack on a local lab host) and
# `make test` (lint, sanity, unit and molecule tests). Both run `make setup` first.
SHELL := /bin/bash
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
# Scenarios `make test-molecule` runs (empty: all under molecule/), and how
# many at once; e.g. make test-molecule SCENARIOS=runtime MOLECULE_JOBS=1
SCENARIOS ?=
MOLECULE_JOBS ?= 2
LAB_HOSTS ?= 3
LAB_RELEASE ?= bookworm

.PHONY: help setup test test-lint test-sanity test-build test-docs test-unit test-terraform test-molecule demo lab-up lab-down clean

help:
	@echo "make setup          install what the demo and tests need (idempotent)"
	@echo "make demo           set up, start 3 lab hosts, converge site.yml, run the deploy/drift/rollback/audit story"
	@echo "make test           setup + lint + ansible-test sanity + build + unit + molecule"
	@echo "make test-unit      unit tests only (fast)"
	@echo "make test-terraform terraform fmt, checkov, Terraform tests"
	@echo "make test-lint      yamllint and ansible-lint only"
	@echo "make test-docs      the collection's docs site (antsibull-docs, Sphinx) in .cache/docs-site"
	@echo "make test-molecule  molecule scenarios only (SCENARIOS=\"$(SCENARIOS)\")"
	@echo "make lab-up / lab-down   start / remove LAB_HOSTS=$(LAB_HOSTS) systemd lab hosts ($(LAB_RELEASE))"

setup:
	@scripts/setup.sh

test: setup
	@SCENARIOS="$(SCENARIOS)" MOLECULE_JOBS=$(MOLECULE_JOBS) scripts/test.sh all

test-lint: setup
	@scripts/test.sh lint

test-sanity: setup
	@scripts/test.sh sanity

test-build: setup
	@scripts/test.sh build

test-docs: setup
	@pytest -q -p no:cacheprovider tests/test_docs_site.py

test-unit: setup
	@scripts/test.sh unit

test-terraform: setup
	@scripts/test.sh terraform

test-molecule: setup
	@SCENARIOS="$(SCENARIOS)" MOLECULE_JOBS=$(MOLECULE_JOBS) scripts/test.sh molecule

lab-up: setup
	ansible-playbook playbooks/lab.yml -e lab_state=up -e lab_host_count=$(LAB_HOSTS) -e lab_release=$(LAB_RELEASE)

lab-down: setup
	ansible-playbook playbooks/lab.yml -e lab_state=down

demo: setup lab-up
	@scripts/demo.sh

clean: lab-down
	rm -rf .cache/test-output ansible_collections/runlocalai/mlops/tests/output
