# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Drift detection: statistics (stats), data files and serving windows (tables), reference
profiles (profiles), the engine, reports, the model checks (model), the data validation gate
(validation), the option schema (options) and the command-line tool on hosts (cli).

numpy/scipy/pyarrow, no Ansible: this package travels to serving hosts whole, with common/.
"""
