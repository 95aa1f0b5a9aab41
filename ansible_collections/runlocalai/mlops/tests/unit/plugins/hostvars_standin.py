# -*- coding: utf-8 -*-
"""A stand-in for Ansible's hostvars in the tests of the filters that read them."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections.abc import Mapping

from ansible.errors import AnsibleUndefinedVariable


class HostVars(Mapping):
    """One host's variables, rendered on access; a callable value stands for a template."""

    def __init__(self, data):
        self.data = data

    def __getitem__(self, key):
        value = self.data[key]
        return value() if callable(value) else value

    def __contains__(self, key):
        return key in self.data

    def __iter__(self):
        return iter(self.data)

    def __len__(self):
        return len(self.data)


def undefined_variable():
    raise AnsibleUndefinedVariable("'ansible_facts' is undefined")


def broken():
    raise ZeroDivisionError("a bug, not an undefined variable")
