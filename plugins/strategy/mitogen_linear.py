# Mitogen's linear strategy, found here so that ansible.cfg can name a path in
# this repository instead of one inside the virtualenv (which changes with the
# Python version). Opt-in: ANSIBLE_STRATEGY=mitogen_linear (see README, "Faster
# converges with Mitogen"). The package comes from requirements.txt.
from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule  # noqa: F401
