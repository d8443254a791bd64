# -*- coding: utf-8 -*-
"""Reads `src` on the controller and hands its text to the knockc_spec module as `content`,
so a spec kept beside the playbook needs no copy task of its own."""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):

    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        arguments = dict(self._task.args)
        source = arguments.get('src')
        if source is not None:
            if arguments.get('content') is not None:
                raise AnsibleActionFail('give src or content, not both')
            try:
                path = self._find_needle('files', source)
                with open(path, 'rb') as handle:
                    arguments['content'] = to_text(handle.read(), errors='surrogate_or_strict')
            except Exception as error:
                raise AnsibleActionFail('cannot read the spec %s: %s' % (source, to_text(error)))
        result.update(self._execute_module(module_name='knockc.knockc.knockc_spec', module_args=arguments,
                                           task_vars=task_vars))
        return result
