# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # How the registry modules reach an MLflow tracking server; the argument spec
    # is mlflow_registry.connection_argument_spec().
    DOCUMENTATION = r"""
options:
  tracking_uri:
    description: URL of the MLflow tracking server. Defaults to the environment variable E(MLFLOW_TRACKING_URI).
    type: str
  username:
    description: Basic-auth user (MLflow C(basic-auth) app). Defaults to E(MLFLOW_TRACKING_USERNAME).
    type: str
  password:
    description: Basic-auth password. Defaults to E(MLFLOW_TRACKING_PASSWORD).
    type: str
  token:
    description:
      - Bearer token, instead of O(username)/O(password), for servers behind a token-checking proxy.
      - Defaults to E(MLFLOW_TRACKING_TOKEN).
    type: str
  validate_certs:
    description: Verify the server's TLS certificate.
    type: bool
    default: true
  ca_path:
    description: CA bundle to verify the server's certificate with (takes precedence over E(REQUESTS_CA_BUNDLE)).
    type: path
  timeout:
    description: Seconds to wait for each API request.
    type: int
    default: 30
"""
