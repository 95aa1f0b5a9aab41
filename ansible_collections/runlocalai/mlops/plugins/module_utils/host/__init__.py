# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""What a host has: CPU, memory, disks, OS, GPUs and driver/CUDA, Python packages, and how that
compares with what a model needs (host_facts module)."""
