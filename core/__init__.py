"""The bottom floor shared by every plugin family: the generic name registry.

Imports nothing of siegeflow, so anything (attacks, judges, optimizers, goals, whatever comes
next) can register by decorator without pulling a layer it should not see.
"""

from core.registry import PluginInfo, Registry, config_options, first_line, validate_config

__all__ = ["PluginInfo", "Registry", "config_options", "first_line", "validate_config"]
