# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: model_check_spec
short_description: The validated --spec document of the model_server role's model-check timer
version_added: "0.2.0"
description:
  - Turns the model-check timer's options (C(model_server_model_check) or a model entry's C(model_check)) into the
    C(--spec) document of C(python -m runlocalai_mlops.drift.cli model-check), checking every part, setting, type and range
    as the checks themselves do (C(module_utils/drift/model.py) C(timer_spec), C(module_utils/drift/options.py) C(TIMER_PARTS)).
    A bad option fails templating with a message naming it.
  - Parts C(accuracy) (accuracy decay of the window's predictions joined with the feedback labels), C(page_hinkley) and
    C(cusum) (sequential detectors over the window's confidence series). Each is a mapping of settings, V(true) for the
    defaults, or V(false) to switch it off.
  - The reference accuracy of the C(accuracy) part is the version's own, from the report the validation gate recorded on
    it (model version tag C(validation.report), key C(metrics.accuracy), on C(rows) evaluation rows). Without it the part is
    off and RV(_value.off) says why.
options:
  _input:
    description: "The timer's options by part, for example C({accuracy: {max_drop: 0.1}, cusum: false})."
    type: dict
    required: true
  tags:
    description: The model version's tags (the C(version.tags) that M(runlocalai.mlops.mlflow_model_info) returns).
    type: dict
    required: true
  window:
    description: The serving-window directory of the model on the host.
    type: str
    required: true
  feedback:
    description: The feedback directory of the model on the host (labels posted to C(/v1/feedback)).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: The spec of breast-cancer's model-check timer
  ansible.builtin.debug:
    msg: >-
      {{ {'cusum': false} | runlocalai.mlops.model_check_spec(version_tags, '/var/lib/runlocalai-model/bc/window',
                                                             '/var/lib/runlocalai-model/bc/feedback') }}
"""

RETURN = r"""
_value:
  description: The spec, the checks that run and the parts that are off.
  type: dict
  contains:
    spec:
      description: The C(--spec) document (keys C(accuracy), C(sequential)).
      type: dict
    checks:
      description: Names of the checks that run (C(accuracy), C(page_hinkley), C(cusum)).
      type: list
      elements: str
    "off":
      description: Part name to the reason it is off.
      type: dict
    reference:
      description: The reference accuracy and its evaluation rows (null when there is none).
      type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.runlocalai.mlops.plugins.module_utils.common.errors import MlopsError
from ansible_collections.runlocalai.mlops.plugins.module_utils.drift.model import reference_from_report, timer_spec
from ansible_collections.runlocalai.mlops.plugins.module_utils.mlflow.registry import TAG_VALIDATION_REPORT


def model_check_spec(options, tags, window, feedback):
    if tags is not None and not isinstance(tags, dict):
        raise AnsibleFilterError("model_check_spec: tags must be the model version's tags (a mapping), got %r" % (tags,))
    accuracy, rows, reason = reference_from_report((tags or {}).get(TAG_VALIDATION_REPORT))
    try:
        out = timer_spec(options, window, feedback, accuracy, rows, reason or "")
    except MlopsError as exc:
        raise AnsibleFilterError(str(exc))
    out["reference"] = {"accuracy": accuracy, "rows": rows}
    return out


class FilterModule(object):
    def filters(self):
        return {"model_check_spec": model_check_spec}
