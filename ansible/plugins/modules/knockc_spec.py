#!/usr/bin/python
# -*- coding: utf-8 -*-

from __future__ import annotations

DOCUMENTATION = r'''
module: knockc_spec
short_description: Put a knockc spec on a host and apply it when the table would change
description:
  - Places the spec at O(dest) and applies it with C(knockc apply), only when C(knockc diff)
    says the live table differs, so a second run reports C(ok).
  - The spec is checked (C(knockc check)) before anything is placed or applied; a bad spec
    fails the task with knockc's error lines, each starting C(FILE:LINE:COL), naming O(src) when given.
  - In check mode nothing is placed or applied. The spec is written to a temporary file on the
    host and C(knockc diff) compares it with the live table; C(changed) follows from its exit
    code (and from whether O(dest) would change).
  - With O(confirm=true) (the default) and a table that changes, the spec is staged next to
    O(dest) (RV(staged)) and O(dest) is left alone; the module starts C(knockc apply STAGED
    --confirm O(confirm_timeout)) in a session of its own, waits until the new table is
    installed, and returns with RV(pending=true). M(knockc.knockc.knockc_confirm) moves the
    staged spec onto O(dest) once the confirm succeeded, so an unconfirmed spec never reaches
    O(dest) (which C(knockc.service) applies at boot). The table reverts unless
    M(knockc.knockc.knockc_confirm) runs in time; run it over a new connection (after C(meta)
    C(reset_connection)) to prove the new table still lets the controller in. The role
    C(knockc.knockc.apply) does exactly that.
  - An C(apply --confirm) of the table that is already waiting (asked with C(knockc status))
    is returned as RV(pending=true) when its table equals the spec, so that it gets confirmed;
    with another spec the task fails and changes nothing.
  - O(dest) is compared byte for byte, with its mode (0644) and owner; a directory, a path
    ending in C(/) or a symlink at O(dest) fails the task.
  - With O(confirm=false) it runs a plain C(knockc apply).
  - Needs root (C(become)), in check mode too, since C(knockc diff) must be able to read the live table.
options:
  content:
    description: The spec's text. Give this or O(src).
    type: str
  src:
    description:
      - A spec file on the controller; the action plugin reads it into O(content). Error
        messages name this path.
    type: path
  dest:
    description: Where the spec lives on the host. Its directory is created when missing.
    type: path
    default: /etc/knockc/knockc.yaml
  confirm:
    description: Apply with C(--confirm) and leave the confirmation to M(knockc.knockc.knockc_confirm).
    type: bool
    default: true
  confirm_timeout:
    description: How long the new table waits for its confirmation before the previous one comes back.
    type: str
    default: 2m
  install_timeout:
    description: Seconds to wait for C(knockc apply --confirm) to install the table before failing.
    type: int
    default: 120
extends_documentation_fragment:
  - knockc.knockc.runner
author: knockc contributors
'''

EXAMPLES = r'''
- name: Apply the spec without a confirmation step
  knockc.knockc.knockc_spec:
    src: specs/web.yaml
    confirm: false
  become: true
'''

RETURN = r'''
table:
  description: The nftables table (family inet) the spec names.
  returned: success
  type: str
table_changed:
  description: Whether the live table differed from the spec (C(knockc diff) exited 1).
  returned: success
  type: bool
file_changed:
  description: Whether O(dest) held other text.
  returned: success
  type: bool
table_diff:
  description: C(knockc diff)'s output, also shown with C(--diff).
  returned: success
  type: str
pending:
  description: An C(apply --confirm) is waiting for M(knockc.knockc.knockc_confirm).
  returned: success
  type: bool
apply_log:
  description: The file that collects the waiting apply's output; pass it to M(knockc.knockc.knockc_confirm).
  returned: when pending
  type: str
apply_pid:
  description: The waiting C(knockc apply --confirm)'s process id; pass it to M(knockc.knockc.knockc_confirm).
  returned: when pending and the process is known
  type: int
staged:
  description:
    - The unconfirmed spec, next to O(dest) (O(dest) plus C(.knockc-pending)); pass it to
      M(knockc.knockc.knockc_confirm), which moves it onto O(dest) once the confirm succeeded.
      Until then O(dest) keeps the spec of the table that comes back if nothing confirms.
  returned: when pending
  type: str
apply_output:
  description: What C(knockc apply) printed.
  returned: when applied
  type: str
'''

import os
import re
import shutil
import stat
import subprocess
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.knockc.knockc.plugins.module_utils.knockc_runner import (
    RUNNER_OPTIONS, KnockcRunner, apply_alive, staged_path)

# What `knockc apply --confirm` prints once the new table is installed and waits.
AWAITING = re.compile(r'^run `knockc confirm', re.MULTILINE)
TABLE = re.compile(r'^table inet (\S+)', re.MULTILINE)
MODE = 0o644


def read_bytes(path):
    """The file's bytes as they are (no newline translation, no decoding), None when missing."""
    try:
        with open(path, 'rb') as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def check_dest(module, dest):
    """Fails clearly on a dest that cannot be a spec file. A symlink is refused rather than
    replaced or written through: the module owns the file at dest, not what it points to."""
    if dest.endswith('/'):
        module.fail_json(msg='dest %s ends in "/": give the spec file\'s path, not a directory' % dest)
    if os.path.islink(dest):
        module.fail_json(msg='dest %s is a symlink (to %s); the module replaces only a regular file: give the real path'
                         % (dest, os.readlink(dest)))
    if os.path.exists(dest) and not os.path.isfile(dest):
        module.fail_json(msg='dest %s exists and is not a regular file' % dest)


def file_differs(dest, content):
    """Whether dest needs writing: other bytes, another mode than 0644, or another owner."""
    try:
        info = os.lstat(dest)
    except FileNotFoundError:
        return True
    if stat.S_IMODE(info.st_mode) != MODE or info.st_uid != os.geteuid() or info.st_gid != os.getegid():
        return True
    return read_bytes(dest) != content


def place(content, dest):
    """Writes dest in one rename, mode 0644: the spec names secret files but holds no secret."""
    directory = os.path.dirname(dest) or '.'
    os.makedirs(directory, mode=0o755, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix='.knockc-', dir=directory)
    try:
        with os.fdopen(descriptor, 'wb') as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, MODE)
        os.replace(temporary, dest)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def remove_stale(path):
    """Removes a staged spec an earlier run left when its confirm never came."""
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)


def start_pending_apply(module, runner, spec_path, table):
    """Starts `apply --confirm` in its own session and returns once the table is installed and
    waiting; the process outlives this module and ends at the confirm or the deadline. Its
    output goes to the table's fixed log file, which the next apply overwrites."""
    log_path, pid_path = runner.apply_files(table)
    os.makedirs(os.path.dirname(log_path), mode=0o700, exist_ok=True)
    with open(log_path, 'w') as log:
        process = subprocess.Popen(
            runner.argv('apply', spec_path, '--confirm', module.params['confirm_timeout']),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd='/',
            env=runner.process_environment(), start_new_session=True, close_fds=True)
    with open(pid_path, 'w') as handle:
        handle.write('%d\n' % process.pid)
    deadline = time.monotonic() + module.params['install_timeout']
    while True:
        output = (read_bytes(log_path) or b'').decode('utf-8', 'replace')
        if AWAITING.search(output):
            return log_path, process.pid, output
        code = process.poll()
        if code is not None:
            module.fail_json(msg='knockc apply --confirm exited %d before it installed the table:\n%s' % (code, output.strip()),
                             rc=code, apply_output=output)
        if time.monotonic() > deadline:
            module.fail_json(msg='knockc apply --confirm did not install the table within %d s (pid %d still runs):\n%s'
                             % (module.params['install_timeout'], process.pid, output.strip()), apply_output=output)
        time.sleep(0.1)


def known_apply(runner, table):
    """The log and pid of the waiting apply of `table`, as far as this module started it."""
    log_path, pid_path = runner.apply_files(table)
    known = {}
    if os.path.isfile(log_path):
        known['apply_log'] = log_path
    try:
        with open(pid_path) as handle:
            pid = int(handle.read().strip())
        if apply_alive(pid):
            known['apply_pid'] = pid
    except (OSError, ValueError):
        pass
    return known


def main():
    module = AnsibleModule(
        argument_spec=dict(
            content=dict(type='str'),
            src=dict(type='path'),
            dest=dict(type='path', default='/etc/knockc/knockc.yaml'),
            confirm=dict(type='bool', default=True),
            confirm_timeout=dict(type='str', default='2m'),
            install_timeout=dict(type='int', default=120),
            **RUNNER_OPTIONS),
        required_one_of=[('content', 'src')],
        supports_check_mode=True,
    )
    params = module.params
    if params['content'] is None:
        module.fail_json(msg='src is read on the controller by the action plugin; give content when calling the module directly')
    content = params['content'].encode('utf-8', 'surrogateescape')
    dest = params['dest']
    check_dest(module, dest)
    staged = staged_path(dest)
    runner = KnockcRunner(module)

    # The spec as it would be on the host, checked and compared before anything is placed.
    workdir = tempfile.mkdtemp(prefix='knockc-ansible-')
    try:
        candidate = os.path.join(workdir, os.path.basename(dest))
        with open(candidate, 'wb') as handle:
            handle.write(content)
        # Same text, same lines and columns: name the file the user edits.
        shown = params['src'] or dest

        def named(text):
            return text.replace(candidate, shown).strip()

        code, out, err = runner.run('check', candidate)
        if code != 0:
            module.fail_json(msg=named(err) or named(out) or 'knockc check exited %d' % code, rc=code)
        code, out, err = runner.run('compile', candidate)
        if code != 0:
            module.fail_json(msg=named(err) or 'knockc compile exited %d' % code, rc=code)
        found = TABLE.search(out)
        table = found.group(1) if found else 'knockc'
        # While an apply --confirm waits, diff compares with its table, which reverts unless
        # confirmed: what is pending decides before the diff can say "unchanged".
        pending_message = runner.pending_message(table)
        code, table_diff, err = runner.run('diff', candidate)
        if code not in (0, 1):
            module.fail_json(msg='knockc diff failed: ' + (named(err) or 'exit %d' % code), rc=code)
        table_changed = code == 1
        table_diff = named(table_diff) + ('\n' if table_diff.strip() else '')
        if pending_message and table_changed:
            module.fail_json(msg='%s; its table is not this spec. Confirm it (knockc confirm --table %s) or let it revert first.'
                             % (pending_message, table), table=table, table_diff=table_diff)

        current = read_bytes(dest)
        file_changed = file_differs(dest, content)
        result = dict(changed=file_changed or table_changed or bool(pending_message), table=table,
                      table_changed=table_changed, file_changed=file_changed, table_diff=table_diff, pending=False)
        if module._diff:
            before = (current or b'').decode('utf-8', 'replace')
            result['diff'] = [dict(before_header=dest, after_header=dest, before=before, after=params['content'])]
            if table_changed:
                # knockc diff names both sides itself (live table, compiled spec).
                result['diff'].append(dict(prepared=table_diff))
        if module.check_mode:
            result['pending'] = bool(pending_message)
            module.exit_json(**result)

        if pending_message:
            # The waiting table is this spec: hand it to knockc_confirm, with the spec staged
            # so that dest changes only once the confirm succeeded.
            place(content, staged)
            result.update(pending=True, staged=staged, pending_message=pending_message, **known_apply(runner, table))
            module.exit_json(**result)

        remove_stale(staged)
        if table_changed and params['confirm']:
            # dest keeps the spec of the table a revert brings back (the one knockc.service
            # applies at boot) until knockc_confirm moves the staged spec onto it.
            place(content, staged)
            log_path, pid, output = start_pending_apply(module, runner, staged, table)
            result.update(pending=True, staged=staged, apply_log=log_path, apply_pid=pid, apply_output=output)
            module.exit_json(**result)
        if file_changed:
            place(content, dest)
        if table_changed:
            code, out, err = runner.run('apply', dest)
            if code != 0:
                module.fail_json(msg='knockc apply exited %d: %s' % (code, (err or out).strip()), rc=code, apply_output=out)
            result['apply_output'] = out
        module.exit_json(**result)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    main()
