# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # How the Prefect modules reach the server; the argument spec is prefect_api.CONNECTION_SPEC.
    DOCUMENTATION = r"""
options:
  api_url:
    description:
      - The Prefect server's API, for example V(https://orchestrator:4443/api) (through the prefect_server
        role's nginx TLS site) or V(http://127.0.0.1:4200/api) on the server's own host.
      - Defaults to the environment variable E(PREFECT_API_URL).
    type: str
  auth_string:
    description:
      - The server's shared C(user:password) string (the prefect_server role's C(prefect_server_auth_string)).
      - Defaults to E(PREFECT_API_AUTH_STRING).
    type: str
  ca_path:
    description: CA bundle (or the server's self-signed certificate) to verify an https O(api_url) with.
    type: path
  timeout:
    description: Seconds to wait for each API request.
    type: int
    default: 30
"""
