# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""What every product package shares: errors, canonical JSON, planned atomic file writes.

Plain Python (standard library only), no Ansible: it travels to hosts with the packages that use it.
"""
