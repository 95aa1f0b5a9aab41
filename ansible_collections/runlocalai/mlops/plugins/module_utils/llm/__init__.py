# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Local LLMs (GGUF files served by llama.cpp's llama-server): what a file holds, read from its
header (gguf), and whether one llama-server instance of it fits a host (fit).

Plain Python, no Ansible. Reading a file needs the `gguf` library (imported when used); the fit
check needs the standard library only and works from the metadata alone (the llm.* tags of a
registered model version).
"""
