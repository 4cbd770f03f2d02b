"""Widgets (anywidget): the Playground. Importing this module imports anywidget/ipywidgets, never litellm."""

from nbplayground.widgets.playground import Playground

__all__ = ["Playground"]
