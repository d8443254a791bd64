# -*- coding: utf-8 -*-
"""How the knockc modules run the knockc binary on a host: which binary, in which network
namespace, with which state directory. Shared so that apply and confirm always reach the
same table and the same pending confirm."""

from __future__ import annotations

import os

RUNNER_OPTIONS = dict(
    knockc=dict(type='str', default='knockc'),
    netns=dict(type='str'),
    run_dir=dict(type='path'),
)


class KnockcRunner:
    """Builds and runs knockc command lines for one module's options."""

    def __init__(self, module):
        self.module = module
        params = module.params
        binary = params['knockc']
        if os.sep not in binary:
            binary = module.get_bin_path(binary, required=True)
        self.binary = binary
        self.prefix = []
        if params.get('netns'):
            self.prefix = [module.get_bin_path('ip', required=True), 'netns', 'exec', params['netns']]
        self.environment = {}
        if params.get('run_dir'):
            self.environment['KNOCKC_RUN_DIR'] = params['run_dir']

    def argv(self, *arguments):
        """The full command line for `knockc ARGUMENTS...`."""
        return self.prefix + [self.binary] + list(arguments)

    def run(self, *arguments):
        """Runs knockc; returns (exit code, stdout, stderr)."""
        return self.module.run_command(self.argv(*arguments), environ_update=self.environment)

    def process_environment(self):
        """The environment for a process started outside run_command (the waiting apply)."""
        environment = dict(os.environ)
        environment.update(self.environment)
        return environment
