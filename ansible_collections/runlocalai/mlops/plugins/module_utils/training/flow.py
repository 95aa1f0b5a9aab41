# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The training pipeline as a Prefect flow: pipeline.run with each stage as a Prefect task (retries on
the stages that reach the network). Run by a process worker of the prefect_worker role (entrypoint
runlocalai_mlops/training/flow.py:training_pipeline; working directory: the pipeline code the
controller shipped). The only file of the collection that imports Prefect.

Ends Completed with a message saying what it did (registered VERSION, or Skipped and why); a stage
that refuses raises, so the run ends Failed with the stage's reason."""

from __future__ import absolute_import, division, print_function

import importlib
import os
from typing import Optional

try:
    from prefect import flow, get_run_logger, task
    from prefect.runtime import flow_run
    from prefect.states import Completed
    HAS_PREFECT = True
except ImportError:  # the controller: modules never import this file; the training hosts have Prefect
    HAS_PREFECT = False

try:
    from . import pipeline
except ImportError:  # loaded by path, as Prefect loads an entrypoint: this collection's code is on
    # PYTHONPATH as the package runlocalai_mlops (the runtime role's `code` entry point)
    pipeline = importlib.import_module("runlocalai_mlops.training.pipeline")

TEXTFILE_DIR = os.environ.get("RUNLOCALAI_TRAINING_TEXTFILE_DIR", "/var/lib/prometheus/node-exporter")
STATE_DIR = os.environ.get("RUNLOCALAI_TRAINING_STATE_DIR", ".")


def as_task(name, function, retries=0):
    return task(function, name=name, retries=retries, retry_delay_seconds=10)


def run_pipeline(spec: dict, trigger: Optional[dict] = None):
    """fetch -> validate -> skip when unchanged -> train -> evaluate -> register a candidate."""
    if trigger is None:  # the deployment's schedule, or a run started from the UI
        trigger = {"kind": "schedule" if "auto-scheduled" in (flow_run.get_tags() or []) else "manual"}
    result = pipeline.run(spec, trigger, os.getcwd(), TEXTFILE_DIR, STATE_DIR, str(flow_run.get_id() or ""),
                          flow_run.get_name() or "", stage=as_task)
    get_run_logger().info(result["message"])
    if result["outcome"] == "skipped_unchanged":
        return Completed(name="Skipped", message=result["message"])
    return Completed(message=result["message"])


# The flow (None where Prefect is not installed).
training_pipeline = flow(name="training-pipeline")(run_pipeline) if HAS_PREFECT else None
