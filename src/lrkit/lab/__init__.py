"""The lab: run learning-rate strategies side by side on a task (:mod:`lrkit.tasks`), record every run
in a resumable SQLite store, and report the difference.

Importing this package imports neither torch nor matplotlib.
"""
