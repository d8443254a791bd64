# -*- coding: utf-8 -*-
"""How the knockc modules run the knockc binary on a host: which binary, in which network
namespace, with which state directory. Shared so that apply and confirm always reach the
same table and the same pending confirm."""

from __future__ import annotations

import json
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

    def state_root(self):
        """knockc's run directory, where the modules keep one apply log per table: on a tmpfs,
        gone at boot like the pending apply it describes."""
        return self.module.params.get('run_dir') or DEFAULT_RUN_DIR

    def apply_files(self, table):
        """(log, pid file) of the waiting apply of `table`: fixed names, overwritten by the next
        apply, so nothing accumulates. The namespace is in the name because knockc keeps a
        pending apply per namespace."""
        namespace = self.module.params.get('netns')
        stem = 'ansible-%s%s' % (namespace + '-' if namespace else '', table)
        root = self.state_root()
        return os.path.join(root, stem + '.apply.log'), os.path.join(root, stem + '.apply.pid')

    def pending_message(self, table):
        """A sentence on a pending `apply --confirm` of `table`, or None: from `knockc status
        --json`'s pending_confirm (status also restores the previous table when the pending
        apply's reverter died). No table, no pending apply."""
        code, out, err = self.run('status', '--table', table, '--json')
        if code != 0:
            return None
        try:
            pending = json.loads(out).get('pending_confirm')
        except ValueError:
            return None
        if not pending:
            return None
        return ('an apply --confirm of table inet %s is waiting for confirmation: the previous table comes back in %ss '
                'unless `knockc confirm` runs' % (table, pending.get('reverts_in_seconds', '?')))


DEFAULT_RUN_DIR = '/run/knockc'


def staged_path(dest):
    """Where an unconfirmed spec waits, next to dest (same directory, so relative paths in the
    spec mean the same), until knockc_confirm moves it onto dest."""
    return dest + '.knockc-pending'


def apply_alive(pid):
    """Whether `pid` is still the waiting `knockc apply --confirm` the module started (it leads
    a session of its own, so a reused pid is told apart by its session and command line)."""
    if not pid:
        return False
    try:
        if os.getsid(pid) != pid:
            return False
        with open('/proc/%d/cmdline' % pid, 'rb') as handle:
            argv = handle.read().split(b'\0')
    except (OSError, ValueError):
        return False
    return b'apply' in argv and b'--confirm' in argv
