"""The shape-flow picture: traces (as plain data) drawn as one self-contained HTML file.

It works on ``ShapeTrace.to_dict()`` and JSON-safe facts only, never on torch
objects, so the same code draws a trace in a notebook, in the CLI, and on an
xdist controller from what the workers sent. ``flow`` turns a trace into the
picture's data (calls, the data flow between them, facts per call); ``document``
writes the HTML around it with the inline script and style from ``static/``.
"""
