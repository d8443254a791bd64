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
options:
  table:
    description: The table, as the spec's C(table:) names it (RV(knockc.knockc.knockc_spec#module:table)).
    type: str
    default: knockc
  apply_log:
    description:
      - The waiting apply's output file (RV(knockc.knockc.knockc_spec#module:apply_log)). When given,
        the module waits up to 30 s for that apply to finish and returns what it printed.
    type: path
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
author: knockc contributors
'''

RETURN = r'''
apply_output:
  description: What the waiting C(knockc apply --confirm) printed, up to its end.
  returned: when apply_log was given
  type: str
'''

import os
import shutil
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.knockc.knockc.plugins.module_utils.knockc_runner import RUNNER_OPTIONS, KnockcRunner

# What the waiting apply prints once the confirm reached it.
KEPT = 'confirmed: keeping the new table'


def main():
    module = AnsibleModule(
        argument_spec=dict(table=dict(type='str', default='knockc'), apply_log=dict(type='path'), **RUNNER_OPTIONS),
        supports_check_mode=True,
    )
    if module.check_mode:
        module.exit_json(changed=True)
    runner = KnockcRunner(module)
    code, out, err = runner.run('confirm', '--table', module.params['table'])
    if code != 0:
        module.fail_json(msg='knockc confirm exited %d: %s' % (code, (err or out).strip()), rc=code)
    result = dict(changed=True, stdout=out, stderr=err)
    log_path = module.params['apply_log']
    if log_path:
        deadline = time.monotonic() + 30
        output = ''
        while time.monotonic() < deadline:
            with open(log_path) as handle:
                output = handle.read()
            if KEPT in output:
                break
            time.sleep(0.1)
        result['apply_output'] = output
        if os.path.basename(os.path.dirname(log_path)).startswith('knockc-ansible-'):
            shutil.rmtree(os.path.dirname(log_path), ignore_errors=True)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
