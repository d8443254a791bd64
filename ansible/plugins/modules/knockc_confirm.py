#!/usr/bin/python
# -*- coding: utf-8 -*-

from __future__ import annotations

DOCUMENTATION = r'''
module: knockc_confirm
short_description: Keep the table that a pending knockc apply --confirm installed
description:
  - Runs C(knockc confirm). Run it over a new connection (after C(meta) C(reset_connection)),
    so that reaching the host proves the new table lets the controller in; otherwise the
    previous table comes back when the confirm timeout ends.
  - Fails when nothing is pending (knockc exits 1), as when the timeout already ended.
  - C(knockc confirm) exiting 0 is what keeps the table, whether or not the waiting apply
    process still runs; its output is returned as RV(stdout) and RV(stderr).
  - With O(staged) and O(dest), moves the staged spec onto O(dest) once the confirm succeeded,
    so O(dest) never holds a spec whose table was not confirmed.
options:
  table:
    description: The table, as the spec's C(table:) names it (RV(knockc.knockc.knockc_spec#module:table)).
    type: str
    default: knockc
  apply_log:
    description:
      - The waiting apply's output file (RV(knockc.knockc.knockc_spec#module:apply_log)). When given,
        the module waits up to 30 s for that apply to finish and returns what it printed. The
        file is only read, never removed (the next apply of the table overwrites it).
    type: path
  apply_pid:
    description:
      - The waiting apply's process id (RV(knockc.knockc.knockc_spec#module:apply_pid)). The wait
        for O(apply_log) ends as soon as that process is gone.
    type: int
  staged:
    description: The staged spec (RV(knockc.knockc.knockc_spec#module:staged)) to move onto O(dest).
    type: path
  dest:
    description: Where the spec lives on the host; with O(staged).
    type: path
extends_documentation_fragment:
  - knockc.knockc.runner
author: knockc contributors
'''

RETURN = r'''
stdout:
  description: What C(knockc confirm) printed.
  returned: success
  type: str
stderr:
  description: What C(knockc confirm) printed on stderr (for example that the apply's reverter had died).
  returned: success
  type: str
apply_output:
  description: What the waiting C(knockc apply --confirm) printed, up to its end or as far as it got.
  returned: when apply_log was given and readable
  type: str
apply_finished:
  description: >-
    Whether the waiting apply printed that it keeps the new table. False when it had died or
    did not finish within 30 s; the table is kept all the same (C(knockc confirm) exited 0).
  returned: when apply_log was given
  type: bool
dest_placed:
  description: Whether the staged spec was moved onto O(dest).
  returned: when staged was given
  type: bool
'''

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.knockc.knockc.plugins.module_utils.knockc_runner import RUNNER_OPTIONS, KnockcRunner, apply_alive

# What the waiting apply prints once the confirm reached it.
KEPT = 'confirmed: keeping the new table'
WAIT_SECONDS = 30


def read_log(path):
    try:
        with open(path, 'rb') as handle:
            return handle.read().decode('utf-8', 'replace')
    except OSError:
        return None


def wait_for_apply(log_path, pid):
    """Reads the apply's log until it says the table is kept, the apply is gone, or 30 s pass.
    Returns (output or None, finished)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        output = read_log(log_path)
        if output is not None and KEPT in output:
            return output, True
        if (pid and not apply_alive(pid)) or time.monotonic() > deadline:
            # One more read: the apply may have written its last line as it ended.
            output = read_log(log_path)
            return output, output is not None and KEPT in output
        time.sleep(0.1)


def check_staged(module, staged, dest):
    """Fails before the confirm on a staged spec or dest that cannot be moved in place."""
    if not os.path.isfile(staged) or os.path.islink(staged):
        module.fail_json(msg='the staged spec %s is missing or not a regular file; nothing was confirmed' % staged)
    if os.path.islink(dest) or (os.path.exists(dest) and not os.path.isfile(dest)):
        module.fail_json(msg='dest %s is not a regular file; nothing was confirmed' % dest)
    if os.path.dirname(os.path.abspath(staged)) != os.path.dirname(os.path.abspath(dest)):
        module.fail_json(msg='the staged spec %s is not next to dest %s' % (staged, dest))


def main():
    module = AnsibleModule(
        argument_spec=dict(table=dict(type='str', default='knockc'), apply_log=dict(type='path'), apply_pid=dict(type='int'),
                           staged=dict(type='path'), dest=dict(type='path'), **RUNNER_OPTIONS),
        required_together=[('staged', 'dest')],
        supports_check_mode=True,
    )
    if module.check_mode:
        module.exit_json(changed=True)
    params = module.params
    staged, dest = params['staged'], params['dest']
    if staged:
        check_staged(module, staged, dest)
    runner = KnockcRunner(module)
    code, out, err = runner.run('confirm', '--table', params['table'])
    if code != 0:
        module.fail_json(msg='knockc confirm exited %d: %s' % (code, (err or out).strip()), rc=code, stdout=out, stderr=err)
    # Exit 0: the record says confirmed, so neither the reverter nor a later recovery reverts.
    result = dict(changed=True, stdout=out, stderr=err)
    if staged:
        os.chmod(staged, 0o644)
        os.replace(staged, dest)
        result['dest_placed'] = True
    warnings = []
    if params['apply_log']:
        output, finished = wait_for_apply(params['apply_log'], params['apply_pid'])
        result['apply_finished'] = finished
        if output is None:
            warnings.append('the table is kept, but the apply log %s cannot be read' % params['apply_log'])
        else:
            result['apply_output'] = output
            if not finished:
                warnings.append('the table is kept (knockc confirm exited 0), but the waiting apply %s'
                                % ('had ended without saying so' if params['apply_pid'] and not apply_alive(params['apply_pid'])
                                   else 'did not say so within %d s' % WAIT_SECONDS))
    for warning in warnings:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
