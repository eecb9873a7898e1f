# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action stackfit_plan: plan hosts on the controller, in this process (library/stackfit_plan.py
documents it). Thin glue: module_utils/stackfit_planner.py holds the logic; this reads each host's
variables, checks them against stackfit_sizing's argument spec and renders the plan's text."""
from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import json
import os
import sys
import time

from ansible.errors import AnsibleError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

# In this tree the action sits in roles/stackfit/action_plugins/, in the collection in
# plugins/action/: module_utils/ is beside roles/, or plugins/module_utils/.
_HERE = os.path.dirname(os.path.abspath(__file__))
_MODULE_UTILS = next(p for p in (os.path.join(_HERE, "..", "..", "..", "module_utils"),
                                 os.path.join(_HERE, "..", "module_utils"))
                     if os.path.isfile(os.path.join(p, "stackfit_planner.py")))
_PACKAGE = "_stackfit_module_utils"


def _planner():
    """module_utils' stackfit_planner, imported as a package so that its relative imports resolve."""
    if _PACKAGE not in sys.modules:
        spec = importlib.machinery.ModuleSpec(_PACKAGE, None, is_package=True)
        spec.submodule_search_locations = [os.path.realpath(_MODULE_UTILS)]
        sys.modules[_PACKAGE] = importlib.util.module_from_spec(spec)
    return importlib.import_module(_PACKAGE + ".stackfit_planner")


_MISSING = object()


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("hosts", "show"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        planner = _planner()
        hosts = self._task.args.get("hosts")
        show = self._task.args.get("show", False)
        if hosts is not None and (not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts)):
            return dict(result, failed=True, msg="stackfit_plan: hosts must be a list of host names, got %r" % (hosts,))
        if not isinstance(show, bool):
            return dict(result, failed=True, msg="stackfit_plan: show must be true or false, got %r" % (show,))
        me = task_vars["inventory_hostname"]
        names = [me] if hosts is None else hosts
        now, declarations, plans, errors, texts = time.time(), {}, {}, {}, []
        # One validator and one templar for every host: building them is most of a host's cost.
        validator = ArgumentSpecValidator(planner.ARGUMENT_SPEC)
        templar = self._templar.copy_with_new_env() if hosts is not None else self._templar
        template = None
        if show:
            import jinja2
            with open(self._find_needle("templates", "plan.txt.j2"), encoding="utf-8") as handle:
                template = jinja2.Environment(trim_blocks=True, undefined=jinja2.StrictUndefined).from_string(handle.read())
        for name in names:
            try:
                plan, host = self._plan_one(planner, validator, templar, name, me, task_vars, now, declarations)
            except (planner.PlanError, AnsibleError) as exc:
                errors[name] = str(exc)
                texts.append("%s: %s" % (name, exc))
                continue
            plans[name] = plan
            if template is not None:
                texts.append(template.render(stackfit_plan=plan, stackfit_host=host, inventory_hostname=name,
                                             stackfit_environment=plan["environment"]).rstrip("\n"))
            if hosts is None:
                result["ansible_facts"] = {"stackfit_plan": plan}
                if host.get("assumed"):
                    result["ansible_facts"]["stackfit_host"] = host
        result["changed"] = False
        if show:
            # The text only: the plans themselves would print thousands of lines more.
            result["msg"] = texts if hosts is not None else texts[0]
            result["_ansible_verbose_always"] = True
        elif hosts is not None:
            result["plans"] = plans
        if errors:
            result.update(failed=True, errors=errors, msg=errors[me] if hosts is None else (
                "stackfit_plan: %d of %d hosts cannot be planned: %s" % (
                    len(errors), len(names), "; ".join("%s: %s" % item for item in sorted(errors.items())))))
        return result

    def _host_vars(self, name, me, task_vars):
        """The variables of one host, as the task would see them on it."""
        if name == me:
            return task_vars
        variable_manager = task_vars["hostvars"]._variable_manager
        host = variable_manager._inventory.get_host(name)
        if host is None:
            raise AnsibleError("stackfit_plan: no such host in the inventory: %s" % name)
        return variable_manager.get_vars(play=self._task.get_play(), host=host, task=self._task)

    def _plan_one(self, planner, validator, templar, name, me, task_vars, now, declarations):
        variables = self._host_vars(name, me, task_vars)
        templar.available_variables = variables

        def get(var, default=_MISSING):
            if var not in variables:
                if default is _MISSING:
                    raise AnsibleError("stackfit_plan: %s: the variable %s is not defined" % (name, var))
                return default
            return templar.template(variables[var])

        planner.check_profile(name, list(get("group_names", [])), get("stackfit_environment"))
        host = planner.assumed_host(get("stackfit_assume_cpus", ""), get("stackfit_assume_memory", ""))
        if host is None:
            host = get("stackfit_host", None)
            if not isinstance(host, dict):
                raise planner.PlanError("%s: no stackfit_host (stackfit_host_facts did not run for it)" % name)
        files = tuple(get("__stackfit_declarations"))
        if files not in declarations:
            declarations[files] = planner.read_declarations(files)
        args = planner.sizing_args(get, list(variables), host, list(get("group_names", [])), files)
        found = planner.undeclared(args["variables"], declarations[files])
        if found:
            raise planner.PlanError("stackfit_sizing: %s" % found[0])
        validated = validator.validate(args)
        if validated.error_messages:
            raise planner.PlanError("stackfit_sizing: %s" % "; ".join(validated.error_messages))
        # The plan as a module would return it: JSON types only.
        return json.loads(json.dumps(planner.host_plan(validated.validated_parameters, now))), host
