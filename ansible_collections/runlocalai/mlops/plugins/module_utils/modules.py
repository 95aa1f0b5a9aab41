# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""MlopsModule: AnsibleModule plus what every module of the collection does the same way.

The one Ansible glue file of module_utils (the packages beside it import nothing from Ansible and
travel to hosts without it), in the manner of amazon.aws's AnsibleAWSModule:

- the import guard: ``libraries=("numpy", "scipy")`` fails with missing_required_lib when one is
  missing, before any work;
- error translation: inside ``with module.reporting_errors():`` a MissingDependencyError becomes
  missing_required_lib(library) and any other MlopsError fail_json(msg=str(error));
- planned writes: ``module.write_files([(param, path, text), ...])`` checks every destination
  first, writes only what changed (atomically, never in check mode) and returns changed, written
  and the --diff entries.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import importlib
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from .common.errors import MissingDependencyError, MlopsError
from .common.files import diff_entry, plan_writes, write_plans


class MlopsModule(AnsibleModule):
    def __init__(self, argument_spec, libraries=(), **kwargs):
        kwargs.setdefault("supports_check_mode", True)
        super(MlopsModule, self).__init__(argument_spec=argument_spec, **kwargs)
        for library in libraries:
            try:
                importlib.import_module(library)
            except ImportError:
                self.fail_json(msg=missing_required_lib(library), exception=traceback.format_exc())

    @contextlib.contextmanager
    def reporting_errors(self):
        """Turn the logic's deliberate errors into a clean failure (no traceback)."""
        try:
            yield
        except MissingDependencyError as exc:
            self.fail_json(msg=missing_required_lib(exc.library))
        except MlopsError as exc:
            self.fail_json(msg=str(exc))

    def write_files(self, items, summarize=()):
        """items: (parameter, path, text); empty paths are skipped. Parameters named in summarize
        show in --diff as a digest (large files). Raises InputError naming the parameter of an
        unusable destination before anything is written."""
        plans = plan_writes(items)
        if not self.check_mode:
            write_plans(plans, mover=self.atomic_move)
        changed = [plan for plan in plans if plan["changed"]]
        result = dict(changed=bool(changed), written=[plan["path"] for plan in changed])
        if self._diff:
            result["diff"] = [diff_entry(plan, plan["param"] in summarize) for plan in changed]
        return result
