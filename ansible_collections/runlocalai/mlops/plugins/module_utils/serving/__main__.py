# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""python -m <package>.serving --config FILE: run one model service (see app.main)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from .server import main

if __name__ == "__main__":
    raise SystemExit(main())
