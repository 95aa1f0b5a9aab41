# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The model service deployed by the model_server role (python -m <package>.serving).

Standard library only at import time, no Ansible: this package travels to serving hosts whole,
with common/ and drift/.
"""
