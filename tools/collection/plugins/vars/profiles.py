# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# stackfit's profiles as group variables, for inventories outside this tree (the collection's).
from __future__ import annotations

DOCUMENTATION = r"""
name: profiles
short_description: stackfit's profiles (development, production) and shared settings as group variables
version_added: 0.2.0
description:
  - Gives the hosts of an inventory the variables that this tree's C(group_vars/) gives its own
    inventories, from the copies shipped in the collection; the group V(all) gets the shared
    settings (C(group_vars/all.yml)), the groups V(development) and V(production) their profile.
  - It runs once, after the inventory is parsed, so that the variables sit where an inventory
    file's own group variables sit, beneath every C(group_vars/) file of the user's inventory and
    playbook directory. A value set there wins over the profile's.
  - A host must still be in exactly one of the groups V(development) and V(production); the role
    stackfit.stackfit.stackfit refuses a host that is in neither.
  - Enable it in C(ansible.cfg), beside the default plugin,
    C(vars_plugins_enabled = host_group_vars,stackfit.stackfit.profiles).
options:
  stage:
    description:
      - When the plugin runs. Only V(inventory) keeps the profile beneath the user's own group
        variables.
    type: str
    default: inventory
    choices: [inventory]
    ini:
      - key: stage
        section: stackfit.stackfit.profiles
"""

import os

from ansible.inventory.group import InventoryObjectType
from ansible.plugins.vars import BaseVarsPlugin
from ansible.utils.vars import combine_vars

# plugins/vars/profiles.py -> the collection's root, which holds group_vars/.
PROFILES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        "group_vars")


class VarsModule(BaseVarsPlugin):
    is_stateless = True

    def get_vars(self, loader, path, entities, cache=True):
        super().get_vars(loader, path, entities)
        data = {}
        for entity in entities if isinstance(entities, list) else [entities]:
            if getattr(entity, "base_type", None) is not InventoryObjectType.GROUP:
                continue
            for found in loader.find_vars_files(PROFILES, entity.name):
                loaded = loader.load_from_file(found, cache="all", unsafe=True, trusted_as_template=True)
                if loaded:
                    data = combine_vars(data, loaded)
        return data
