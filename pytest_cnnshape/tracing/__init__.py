"""Running a model once and recording every module call: the engine under everything.

``tracer`` runs a forward with hooks (``recorder``) on meta or a real device
(``devices``), with the model's state put back afterwards (``state``) and
torch's slow meta kernels short-cut (``metamode``); ``records`` and ``table`` are
what a trace produces; ``failure`` is everything known when a forward raised,
which ``diagnostics`` (the layer above) explains. Importing this package imports
nothing: its modules load torch when used.
"""
