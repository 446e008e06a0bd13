"""The lab: built-in training tasks (:mod:`lrkit.lab.tasks`) to compare learning-rate strategies on.

Importing this package imports neither torch nor matplotlib; :mod:`lrkit.lab.tasks` imports torch only
when a task is built.
"""
