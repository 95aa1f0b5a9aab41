# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The MLflow model registry: the REST client and governance rules (registry), and the
validation gate's evaluation of a registered model (evaluation)."""
