# -*- coding: utf-8 -*-
"""The options every knockc module shares (module_utils/knockc_runner.py's RUNNER_OPTIONS):
which knockc binary, in which network namespace, with which state directory."""

from __future__ import annotations


class ModuleDocFragment(object):
    DOCUMENTATION = r'''
options:
  knockc:
    description: The knockc binary on the host, a path or a name on the PATH.
    type: str
    default: knockc
  netns:
    description: Run knockc inside this network namespace (C(ip netns exec)). For tests.
    type: str
  run_dir:
    description: knockc's state directory (C(KNOCKC_RUN_DIR)) instead of C(/run/knockc). For tests.
    type: path
'''
