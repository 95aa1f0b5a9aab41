# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""What the filters that read hostvars share: the errors and values that mean "this variable cannot be
rendered here" (e.g. a template over facts of a host outside the play). module_utils takes them as
arguments (errors=, undefined=), so the logic itself imports nothing from Ansible or Jinja."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from jinja2 import Undefined
from jinja2.exceptions import UndefinedError

from ansible.errors import AnsibleTemplateError

# A template error raised on access, or an undefined value (a marker) returned in its place. Any
# other error stays an error.
NOT_RENDERED = (AnsibleTemplateError, UndefinedError)
UNDEFINED = (Undefined,)
